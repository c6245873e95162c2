#!/usr/bin/env node
import { createCli } from './entrypoints/cli.ts'

await createCli().parseAsync(process.argv)
