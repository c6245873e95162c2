import { type BenchResults, findRun } from './report.ts'

type Point = Readonly<{ label: string; throughput: number | null; p99: number | null }>
type Panel = Readonly<{ title: string; points: readonly Point[] }>
type Series = Readonly<{ name: string; panels: readonly Panel[]; bar: string; marker: string; ink: string }>

const WIDTH = 960
const HEIGHT = 380
const TOP = 70
const BOTTOM = 300
const LEFT = 70
const RIGHT = WIDTH - 70
const GAP = 40

/** Throughput (bars, left axis) and p99 (diamonds, right axis) by concurrency, history and storage. */
export function renderChart(results: BenchResults, baseline: BenchResults | null = null): string {
  const series: Series[] = [
    ...(baseline ? [{ name: 'before', panels: panels(baseline), bar: '#c7ccd6', marker: '#7a8294', ink: '#333' }] : []),
    { name: baseline ? 'after' : 'this run', panels: panels(results), bar: '#4e79a7', marker: '#e15759', ink: 'white' },
  ]
  const all = series.flatMap((s) => s.panels.flatMap((p) => p.points))
  const pgbench = results.pgbench?.tps ?? null
  const maxThroughput = niceCeil(Math.max(1, pgbench ?? 0, ...all.map((p) => p.throughput ?? 0)))
  const maxP99 = niceCeil(Math.max(1, ...all.map((p) => p.p99 ?? 0)))
  const y = (value: number, max: number) => BOTTOM - (value / max) * (BOTTOM - TOP)
  const layout = series[0]?.panels ?? []
  const slots = layout.reduce((n, panel) => n + panel.points.length, 0)
  const slotWidth = (RIGHT - LEFT - GAP * (layout.length - 1)) / slots
  const barWidth = (slotWidth * 0.6) / series.length

  const out: string[] = []
  for (const tick of ticks(maxThroughput)) {
    out.push(
      `<line x1="${LEFT}" x2="${RIGHT}" y1="${y(tick, maxThroughput)}" y2="${y(tick, maxThroughput)}" stroke="#e5e5e5"/>`,
    )
    out.push(text(LEFT - 8, y(tick, maxThroughput) + 4, format(tick), 'end'))
  }
  for (const tick of ticks(maxP99)) out.push(text(RIGHT + 8, y(tick, maxP99) + 4, format(tick), 'start'))
  const middle = (TOP + BOTTOM) / 2
  out.push(text(18, middle, 'allocations/s', 'middle', `rotate(-90 18 ${middle})`))
  out.push(text(WIDTH - 14, middle, 'p99 latency (ms)', 'middle', `rotate(90 ${WIDTH - 14} ${middle})`))

  let x = LEFT
  layout.forEach((panel, panelIndex) => {
    const width = panel.points.length * slotWidth
    out.push(text(x + width / 2, BOTTOM + 48, panel.title, 'middle', undefined, 'bold'))
    panel.points.forEach((point, pointIndex) => {
      const centre = x + (pointIndex + 0.5) * slotWidth
      out.push(text(centre, BOTTOM + 18, point.label, 'middle'))
      series.forEach((s, seriesIndex) => {
        const value = s.panels[panelIndex]?.points[pointIndex]
        const left = centre - (barWidth * series.length) / 2 + seriesIndex * barWidth
        if (value?.throughput) {
          const top = y(value.throughput, maxThroughput)
          out.push(`<rect x="${left}" y="${top}" width="${barWidth - 2}" height="${BOTTOM - top}" fill="${s.bar}"/>`)
          const inside = BOTTOM - top > 24
          const label = text(left + barWidth / 2 - 1, inside ? top + 14 : top - 4, format(value.throughput), 'middle')
          out.push(inside ? label.replace('<text ', `<text fill="${s.ink}" `) : label)
        }
        if (value?.p99) {
          const cx = left + barWidth / 2 - 1
          const cy = y(value.p99, maxP99)
          out.push(`<path d="M${cx} ${cy - 6}L${cx + 6} ${cy}L${cx} ${cy + 6}L${cx - 6} ${cy}Z" fill="${s.marker}"/>`)
          out.push(text(cx + 8, cy + 4, `${format(value.p99)} ms`, 'start', undefined, 'normal', 10))
        }
      })
    })
    x += width + GAP
  })
  out.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${BOTTOM}" y2="${BOTTOM}" stroke="#333"/>`)
  if (pgbench) {
    const py = y(pgbench, maxThroughput)
    out.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${py}" y2="${py}" stroke="#59a14f" stroke-dasharray="6 4"/>`)
    out.push(text(RIGHT - 4, py - 5, `pgbench TPC-B-like: ${format(pgbench)} tps`, 'end', undefined, 'normal', 11))
  }
  out.push(legend(series))
  const commit = results.machine.source ? `commit ${results.machine.source.commit}, ` : ''
  const title = `Allocations/s and p99 latency (${results.machine.cpus} cores, ${commit}${results.startedAt.slice(0, 10)})`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    text(WIDTH / 2, 24, title, 'middle', undefined, 'bold', 15),
    ...out,
    '</svg>',
    '',
  ].join('\n')
}

function panels(results: BenchResults): Panel[] {
  const point = (label: string, run: ReturnType<typeof findRun>): Point => ({
    label,
    throughput: run?.allocationsPerSecond ?? null,
    p99: run?.latency.p99 ?? null,
  })
  const uniform = findRun(results, 'uniform', 10)
  return [
    {
      title: 'Concurrency (PostgreSQL)',
      points: [
        point('10', uniform),
        point('50', findRun(results, 'uniform', 50)),
        point('64, one hot sku', findRun(results, 'hot')),
      ],
    },
    {
      title: 'History (10 connections)',
      points: [point('fresh', uniform), point('1,000+ lines per sku', findRun(results, 'history'))],
    },
    {
      title: 'Storage (10 connections)',
      points: [point('PostgreSQL', uniform), point('PGlite', findRun(results, 'embedded'))],
    },
  ]
}

function legend(series: readonly Series[]): string {
  return series
    .map((s, i) => {
      const x = LEFT + i * 340
      return [
        `<rect x="${x}" y="40" width="14" height="14" fill="${s.bar}"/>`,
        text(x + 20, 52, `allocations/s (${s.name})`, 'start'),
        `<path d="M${x + 196} 41L${x + 202} 47L${x + 196} 53L${x + 190} 47Z" fill="${s.marker}"/>`,
        text(x + 208, 52, `p99 (${s.name})`, 'start'),
      ].join('\n')
    })
    .join('\n')
}

function text(x: number, y: number, content: string, anchor: string, transform?: string, weight = 'normal', size = 12) {
  const rotate = transform ? ` transform="${transform}"` : ''
  const escaped = content.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
  return `<text x="${x}" y="${y}" text-anchor="${anchor}" font-weight="${weight}" font-size="${size}"${rotate}>${escaped}</text>`
}

function format(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 1 : 0 })
}

/** 1, 2, 4, 5 or 8 times a power of ten, at least `value`: quarters of it are round numbers. */
function niceCeil(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value))
  const step = [1, 2, 4, 5, 8, 10].find((m) => m * power >= value) ?? 10
  return step * power
}

function ticks(max: number): number[] {
  return [0, 0.25, 0.5, 0.75, 1].map((f) => f * max)
}
