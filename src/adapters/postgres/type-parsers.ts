import pg from 'pg'

const INT8 = 20
const DATE = 1082
const asText = (value: string) => value

/**
 * How the service reads PostgreSQL's values, from a server and from the embedded database alike:
 * node-postgres's parsers, but a bigint as a number (ids and counts stay far below 2^53) and a date as
 * its text (a day, not an instant in some time zone).
 */
export const typeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === INT8 ? Number : oid === DATE ? asText : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
