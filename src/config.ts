/** The service's settings, read from the environment; reading them opens nothing. */
export type Config = Readonly<{
  host: string
  port: number
  /** PostgreSQL server; `null` runs on the embedded PGlite under `dataDir`. */
  databaseUrl: string | null
  dataDir: string
  poolSize: number
  redisUrl: string | null
  smtpUrl: string | null
  /** Where out-of-stock notices go, and whom they come from. */
  stockTeamEmail: string
  mailFrom: string
  logLevel: string
  /** How often the event stream looks for new events (one query for all its readers). */
  eventsPollMs: number
  /** How often an idle event stream sends a comment, so proxies keep it open. */
  eventsHeartbeatMs: number
  /** Bytes a reader of the event stream may leave unread before it is dropped (it resumes from its last id). */
  eventsMaxBufferedBytes: number
  /** Delivered events older than this many days are removed from the outbox; 0 keeps them all. */
  eventsRetentionDays: number
  /** `API_KEYS`, unparsed: `name:scope:secret,...` (see api-keys.ts); empty: no authentication. */
  apiKeys: string
  /** Serve without keys on an address other machines can reach. */
  allowAnonymous: boolean
  /** How long to wait for a connection to PostgreSQL (or a free one in the pool) before answering 503. */
  databaseConnectTimeoutMs: number
  /** How long one statement may take, on the server and as the client waits for its answer. */
  databaseStatementTimeoutMs: number
  /** A log line per request, with its id and the API key's name. */
  logRequests: boolean
}>

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 5005),
    databaseUrl: env.DATABASE_URL || null,
    dataDir: env.DATA_DIR || './data',
    poolSize: integer(env, 'DATABASE_POOL_SIZE', 10),
    redisUrl: env.REDIS_URL || null,
    smtpUrl: env.SMTP_URL || null,
    stockTeamEmail: env.STOCK_TEAM_EMAIL || 'stock-team@localhost',
    mailFrom: env.SMTP_FROM || 'allocation@localhost',
    logLevel: env.LOG_LEVEL || 'info',
    eventsPollMs: integer(env, 'EVENTS_POLL_MS', 250),
    eventsHeartbeatMs: integer(env, 'EVENTS_HEARTBEAT_MS', 15_000),
    eventsMaxBufferedBytes: integer(env, 'EVENTS_MAX_BUFFERED_BYTES', 1_048_576),
    eventsRetentionDays: integer(env, 'EVENTS_RETENTION_DAYS', 30),
    apiKeys: env.API_KEYS ?? '',
    allowAnonymous: env.ALLOW_ANONYMOUS === 'true',
    databaseConnectTimeoutMs: integer(env, 'DATABASE_CONNECT_TIMEOUT_MS', 3000),
    databaseStatementTimeoutMs: integer(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 5000),
    logRequests: env.LOG_REQUESTS !== 'false',
  }
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, not "${raw}"`)
  return value
}
