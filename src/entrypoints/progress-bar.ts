export type Progress = Readonly<{
  /** Bytes read of `total`. */
  done: number
  total: number
  rows: number
  elapsedMs: number
}>

const WIDTH = 30

/**
 * `[#########                     ] 31%  31,000 rows  6,120 rows/s  ETA 0:11`: the rate is rows over the
 * time so far, the ETA the bytes left at the byte rate so far (`--:--` until there is a rate).
 */
export function progressLine({ done, total, rows, elapsedMs }: Progress): string {
  const ratio = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(ratio * WIDTH)
  const seconds = elapsedMs / 1000
  const rate = seconds > 0 ? rows / seconds : 0
  const eta = done > 0 && seconds > 0 ? clock(((total - done) * seconds) / done) : '--:--'
  const count = (n: number) => Math.round(n).toLocaleString('en-US')
  return (
    `[${'#'.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${Math.floor(ratio * 100)}%  ` +
    `${count(rows)} ${rows === 1 ? 'row' : 'rows'}  ${count(rate)} rows/s  ETA ${eta}`
  )
}

function clock(seconds: number): string {
  const whole = Math.max(0, Math.ceil(seconds))
  const h = Math.floor(whole / 3600)
  const m = Math.floor((whole % 3600) / 60)
  const s = String(whole % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
}

/** A one-line progress bar on stderr when it is a terminal; silent otherwise (logs stay clean). */
export function progressBar(total: number, { now = () => performance.now() } = {}) {
  const tty = process.stderr.isTTY === true
  const started = now()
  let drawnAt = Number.NEGATIVE_INFINITY
  let last = { done: 0, rows: 0 }
  const draw = (force: boolean) => {
    const at = now()
    // Ten times a second is smooth enough, and keeps the terminal from slowing the import.
    if (!tty || (!force && at - drawnAt < 100)) return
    drawnAt = at
    process.stderr.write(`\r${progressLine({ ...last, total, elapsedMs: at - started })}\x1b[K`)
  }
  return {
    update(done: number, rows: number) {
      last = { done, rows }
      draw(false)
    },
    /** Prints a message on its own line without breaking the bar. */
    interrupt(message: string) {
      if (tty) process.stderr.write('\r\x1b[K')
      console.error(message)
      draw(true)
    },
    done() {
      last = { ...last, done: total }
      draw(true)
      if (tty) process.stderr.write('\n')
    },
  }
}
