import type { components, operations } from "../generated/openapi.ts";

/**
 * Types generated from the contract, for handlers: the router has already validated the request
 * against the same contract, so a handler may read `ctx.body as OpBody<"createOAuthClient">`.
 */
type ContentOf<T> = T extends { content: infer C } ? C[keyof C] : never;

export type OpBody<K extends keyof operations> = operations[K] extends { requestBody?: infer B } ? ContentOf<NonNullable<B>> : never;
export type OpQuery<K extends keyof operations> = operations[K] extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
export type OpPath<K extends keyof operations> = operations[K] extends { parameters: { path?: infer P } } ? NonNullable<P> : never;
export type Schema<N extends keyof components["schemas"]> = components["schemas"][N];
export type OperationId = keyof operations;
