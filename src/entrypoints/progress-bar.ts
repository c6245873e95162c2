/** A one-line progress bar on stderr when it is a terminal; silent otherwise (logs stay clean). */
export function progressBar(total: number) {
  const tty = process.stderr.isTTY === true
  const width = 30
  let shown = -1
  const draw = (done: number) => {
    const ratio = total > 0 ? Math.min(1, done / total) : 1
    const percent = Math.floor(ratio * 100)
    if (!tty || percent === shown) return
    shown = percent
    const filled = Math.round(ratio * width)
    process.stderr.write(`\r[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${percent}%`)
  }
  return {
    update: draw,
    /** Prints a message on its own line without breaking the bar. */
    interrupt(message: string) {
      if (tty) process.stderr.write('\r\x1b[K')
      console.error(message)
      shown = -1
    },
    done() {
      draw(total)
      if (tty) process.stderr.write('\n')
    },
  }
}
