// moved to keys/digest.ts; shim kept for branches in flight, removed after merge
export * from '../keys/digest.js'
