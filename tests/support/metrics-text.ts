/** A sample of the Prometheus text format: `name{label="value",...} number`. */
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|[Nn][Aa][Nn]|[+-]Inf)( -?\d+)?$/
const COMMENT =
  /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/

/**
 * Reads an exposition strictly: every line must be a HELP or TYPE comment or a sample, or it throws
 * naming the line. Returns each series (`name{labels}` as written) with its value.
 */
export function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>()
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '' || COMMENT.test(line)) continue
    const sample = SAMPLE.exec(line)
    if (!sample) throw new Error(`Line ${i + 1} is not in the Prometheus text format: ${JSON.stringify(line)}`)
    series.set(`${sample[1]}${sample[2] ?? ''}`, Number(sample[3]))
  }
  return series
}
