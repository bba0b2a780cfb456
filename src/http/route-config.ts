/**
 * What a route declares about itself in its `config`. The platform layer reads these; routes
 * never check credentials or formats by hand.
 */
export type ResponseFormats = 'api' | 'raw';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `api` (the default for every route under the API plugin): the response is JSON or XML by
     * the Accept header, errors alike; an Accept we cannot produce is 406.
     * `raw`: the route sets its own content type (docs page, metrics, event stream); its
     * errors are still JSON or XML by the Accept header.
     */
    formats?: ResponseFormats;
    /** The route can also stream Server-Sent Events (chosen by `Accept: text/event-stream`). */
    sse?: boolean;
    /** Root element name of XML responses (default `response`). */
    xmlRoot?: string;
    /** Element name for items of a top-level array in XML (default `item`). */
    xmlItem?: string;
  }
  interface FastifyRequest {
    /** The negotiated response format. */
    format: 'json' | 'xml';
    /** True when the body was sent as XML (its text values still need the schema's types). */
    bodyIsXml: boolean;
    /** The client asked for Server-Sent Events on a route that streams them. */
    wantsEventStream: boolean;
    /** The raw request body as received (signatures hash it). */
    rawBody: Buffer | undefined;
  }
}
