import { randomUUID } from 'node:crypto'

const suffix = () => randomUUID().slice(0, 8)

export const randomSku = (name = '') => `sku-${name}-${suffix()}`
export const randomBatchref = (name = '') => `batch-${name}-${suffix()}`
export const randomOrderid = (name = '') => `order-${name}-${suffix()}`
