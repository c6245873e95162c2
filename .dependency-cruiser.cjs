/** Dependencies point inward: domain <- service-layer <- adapters <- bootstrap <- entrypoints. */
module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      comment: 'src/domain imports nothing outside itself: no package, no node: module, no other layer.',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { pathNot: '^src/domain/' },
    },
    {
      name: 'service-layer-knows-no-adapters',
      comment: 'The service layer depends on ports, never on adapters, entrypoints or the composition root.',
      severity: 'error',
      from: { path: '^src/service-layer/' },
      to: { path: '^src/(adapters|entrypoints)/|^src/bootstrap\\.ts$|^src/main\\.ts$' },
    },
    {
      name: 'adapters-know-no-entrypoints',
      severity: 'error',
      from: { path: '^src/adapters/' },
      to: { path: '^src/entrypoints/|^src/bootstrap\\.ts$|^src/main\\.ts$' },
    },
    {
      name: 'unit-tests-use-fakes',
      comment: 'Unit tests exercise the domain and the service layer with fakes of the ports, never adapters.',
      severity: 'error',
      from: { path: '^tests/unit/' },
      to: { path: '^src/(adapters|entrypoints)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
}
