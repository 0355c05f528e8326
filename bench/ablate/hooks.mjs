// Module resolution hook of the ablated tree (register.mjs): kernel-api/locks.ts,
// impl/locks.ts and model/locks.ts resolve to this folder's ablated ones, except for those
// files' own imports of the real ones. Registered after tsx's hooks, so it runs first and
// `next` is tsx's resolution.
const ABLATED = {
  '/kernel-api/locks.ts': new URL('./locks.ts', import.meta.url).href,
  '/impl/locks.ts': new URL('./impl-locks.ts', import.meta.url).href,
  '/model/locks.ts': new URL('./model-locks.ts', import.meta.url).href,
};
const MINE = new Set(Object.values(ABLATED));

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (MINE.has(context.parentURL)) return r;
  for (const [real, ablated] of Object.entries(ABLATED)) if (r.url.endsWith(real)) return { ...r, url: ablated, shortCircuit: true };
  return r;
}
