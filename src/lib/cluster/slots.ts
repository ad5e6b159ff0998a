// moved to core/slots.ts; shim kept for branches in flight, removed after merge
export * from '../core/slots.js'
