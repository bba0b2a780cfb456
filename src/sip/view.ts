/**
 * A parsed header as the typed getters of message.ts return it. A header read off the wire is
 * parsed once and its structured value is shared by everyone who reads that header of that message
 * (see WireHeader in headers.ts), so it is read-only all the way down, maps included. Code that
 * needs a changed value makes its own (`{ ...to, params: new Map(to.params).set('tag', t) }`).
 * Formatters and other readers take a View, which a freshly built mutable value also satisfies.
 */
export type View<T> =
  T extends Map<infer K, infer V>
    ? ReadonlyMap<K, View<V>>
    : T extends readonly (infer E)[]
      ? readonly View<E>[]
      : T extends object
        ? { readonly [P in keyof T]: View<T[P]> }
        : T;
