/**
 * The fields of a PostgreSQL error that callers read (`code`, `constraint`, `detail`...), as plain data:
 * what crosses from the embedded database's thread, or from its wire protocol, into a `PgliteError`.
 */
export function errorFields(error: object): Record<string, string | number> {
  return Object.fromEntries(
    Object.entries(error).filter((entry): entry is [string, string | number] =>
      ['string', 'number'].includes(typeof entry[1]),
    ),
  )
}
