import { isDeepStrictEqual } from 'node:util'
import type { Handover } from './redis-mixed-deployment.ts'
import type { Outcome, Published, Sent } from './redis-mixed-messages.ts'
import { CHANNEL, COMMANDS, fieldsOf, groupBy, parsed } from './redis-mixed-redis.ts'
import type { Replay } from './redis-mixed-replay.ts'
import type { Body } from './redis-mixed-seeded.ts'
import { changesOf, type OutboxRow } from './redis-mixed-state.ts'

/** Each entry applied (its id in handled_messages) or dead-lettered, once, as its kind allows; none else. */
export function streamAccounting(
  sent: readonly Sent[],
  handled: readonly string[],
  letters: Record<string, string>[],
): { applied: Set<string>; problems: string[] } {
  const problems: string[] = []
  const sentIds = new Set(sent.map((s) => s.id))
  const recorded = new Set<string>()
  for (const id of handled) {
    const entry = id.startsWith(`${COMMANDS}:`) ? id.slice(COMMANDS.length + 1) : id
    if (!sentIds.has(entry)) problems.push(`handled_messages holds ${id}, never sent`)
    recorded.add(entry)
  }
  const ofStream = letters.filter((letter) => letter.source !== CHANNEL)
  for (const letter of ofStream) {
    if (letter.source !== COMMANDS || !sentIds.has(letter.id ?? ''))
      problems.push(`a letter of nothing sent: ${JSON.stringify(letter)}`)
  }
  const lettersOf = groupBy(ofStream, (letter) => letter.id)
  const appliedOf = new Map<string, number>()
  const applied = new Set<string>()
  for (const s of sent) {
    const its = lettersOf.get(s.id) ?? []
    const what = `entry ${s.id} ${JSON.stringify(s.fields)}`
    const reason = its[0]?.reason
    // An entry refused is not handled: delivered again, it would be taken for applied and never set aside.
    if (recorded.has(s.id) && reason) problems.push(`${what} is in handled_messages and dead-lettered (${reason})`)
    if (!recorded.has(s.id) && !reason) problems.push(`${what} was neither applied nor dead-lettered`)
    if (its.length > 1) problems.push(`${what} was dead-lettered ${its.length} times`)
    const outcome = reason?.split(':')[0] ?? (recorded.has(s.id) ? 'applied' : undefined)
    if (outcome && !s.allowed.includes(outcome as Outcome)) {
      problems.push(`${what}: ${reason ?? 'applied'}; expected ${s.allowed.join(' or ')}`)
    }
    for (const letter of its) {
      if (!isDeepStrictEqual(parsed(letter.message ?? ''), fieldsOf(s.fields)))
        problems.push(`${what}: letter ${letter.message}`)
    }
    if (outcome === 'applied') applied.add(s.id)
    if (s.oneOf && outcome === 'applied') appliedOf.set(s.oneOf, (appliedOf.get(s.oneOf) ?? 0) + 1)
    if (s.oneOf && !appliedOf.has(s.oneOf)) appliedOf.set(s.oneOf, 0)
  }
  for (const [line, count] of appliedOf) {
    if (count !== 1) problems.push(`${line}, sent with two quantities: ${count} of them applied, not 1`)
  }
  return { applied, problems }
}

/**
 * What each applied entry did is in the events, once, and an entry not applied did nothing: a quantity or
 * eta set (each is unique to its message), a batch created, a line placed (at least once, at most once per
 * entry applied) and cancelled (once per entry applied).
 */
export function streamEffects(
  sent: readonly Sent[],
  applied: ReadonlySet<string>,
  replay: Replay,
  outbox: readonly OutboxRow[],
) {
  const problems: string[] = []
  const changes = changesOf(outbox)
  const lines = new Map<string, { allocates: number; cancels: number }>()
  const created = new Map<string, { applied: number; command: Body }>()
  for (const s of sent) {
    const c = s.command
    if (!c || !s.allowed.includes('applied')) continue
    const yes = applied.has(s.id)
    const expect = (key: string) => {
      if (changes(key) !== (yes ? 1 : 0))
        problems.push(`${key}: ${changes(key)} events for entry ${s.id}, ${yes ? '' : 'not '}applied`)
    }
    if (c.type === 'ChangeBatchQuantity') expect(`qty ${c.ref} ${c.qty}`)
    if (c.type === 'ChangeBatchEta') expect(`eta ${c.ref} ${c.eta}`)
    if (c.type === 'CreateBatch') {
      const seen = created.get(c.ref as string) ?? { applied: 0, command: c }
      created.set(c.ref as string, { ...seen, applied: seen.applied + (yes ? 1 : 0) })
    }
    if (c.type === 'Allocate' || c.type === 'Deallocate') {
      const key = `${c.sku} ${c.orderid}`
      const line = lines.get(key) ?? { allocates: 0, cancels: 0 }
      if (yes && c.type === 'Allocate') line.allocates += 1
      if (yes && c.type === 'Deallocate') line.cancels += 1
      lines.set(key, line)
    }
  }
  for (const [ref, { applied: count, command }] of created) {
    if (count === 0 || changes(`created ${ref}`) !== 1) {
      problems.push(`${ref}: ${count} CreateBatch entries applied, created ${changes(`created ${ref}`)} times`)
    }
    const told = replay.batches.get(ref)
    if (count > 0 && told?.sku !== command.sku) problems.push(`${ref} created for ${told?.sku}`)
  }
  for (const [key, { allocates, cancels }] of lines) {
    const initials = replay.initials.get(key) ?? 0
    if (allocates === 0 ? initials !== 0 : initials < 1 || initials > allocates) {
      problems.push(`${key}: ${allocates} Allocate entries applied, ${initials} placements or refusals in the events`)
    }
    const told = replay.cancels.get(key) ?? 0
    if (told !== cancels)
      problems.push(`${key}: ${cancels} Deallocate entries applied, ${told} cancellations in the events`)
  }
  return problems
}

/**
 * The book's channel: a change of a known batch is applied once (its qty is unique to it); any other
 * message is dead-lettered once, with its text and a reason, and changes nothing. Once, not once per
 * process: a change applied again after a newer one undoes the newer one. A message published while the
 * channel changed hands may be lost, as pub/sub goes, and counts as `lost`; it is never applied twice.
 */
export function channelEffects(
  published: readonly (Published & { at: number })[],
  letters: Record<string, string>[],
  outbox: readonly OutboxRow[],
  handover: Handover | null,
): { problems: string[]; lost: number } {
  const problems: string[] = []
  const changes = changesOf(outbox)
  const lettersOf = groupBy(
    letters.filter((letter) => letter.source === CHANNEL),
    (letter) => letter.message,
  )
  let lost = 0
  for (const p of published) {
    const its = lettersOf.get(p.text) ?? []
    const mayBeLost = handover !== null && p.at >= handover.from && p.at <= handover.to
    const count = p.valid ? changes(`qty ${p.batchref} ${p.qty}`) : its.length
    if (count === 0 && mayBeLost) {
      lost++
      continue
    }
    if (p.valid) {
      if (count !== 1) {
        // Applied again after another change: the older quantity overwrote the newer one.
        const history = outbox
          .filter((e) => e.payload.type === 'BatchQuantityChanged' && e.payload.ref === p.batchref)
          .map((e) => `${e.payload.qty} (event ${e.id})`)
        const from = history.findIndex((h) => h.startsWith(`${p.qty} `))
        problems.push(
          `${p.text}: applied ${count} times, not once; its qtys from then: ${history.slice(from).join(', ')}`,
        )
      }
      if (its.length > 0) problems.push(`${p.text}: dead-lettered (${its[0]?.reason})`)
    } else {
      if (its.length !== 1) problems.push(`${p.text}: dead-lettered ${its.length} times, not once`)
      if (its.some((l) => !l.reason)) problems.push(`${p.text}: dead-lettered without a reason`)
    }
  }
  return { problems, lost }
}
