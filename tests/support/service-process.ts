import type { ChildProcess } from 'node:child_process'

/**
 * Resolves with the address from the service's startup line ("listening at http://..."), or rejects,
 * killing the process, if it exits or says nothing of the sort within `timeoutMs`. `output` is what the
 * process has written so far, for the failure message.
 */
export function listeningAddress(
  child: ChildProcess,
  exited: Promise<number | null>,
  output: () => string,
  timeoutMs: number,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs)
    const fail = (why: string) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`The service ${why}. Its output:\n${output()}`))
    }
    child.stdout?.on('data', () => {
      const address = /listening at (http:\/\/[^\s)]+)/.exec(output())?.[1]
      if (address) {
        clearTimeout(timer)
        resolve(address)
      }
    })
    void exited.then((code) => fail(`exited with ${code} before listening`))
  })
}
