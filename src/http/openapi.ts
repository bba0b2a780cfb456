import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export const API_VERSION = '0.1.0';

/**
 * The OpenAPI document, generated from the route schemas, at /api/openapi.json, with a docs
 * page at /api/docs (assets served from node_modules, no CDN).
 */
export const openapi = fp(
  async (app: FastifyInstance) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'OneCloud API (open implementation)',
          description:
            'An open, self-hostable implementation of the Setera OneCloud / Dstny Core platform API. ' +
            'User APIs take a ticket token (`Authorization: Bearer {token}` or `?t={token}`); the admin API ' +
            'takes requests signed with a system ticket (SNT-HMACv1). Every operation speaks JSON and XML; ' +
            'errors carry `Warning: 703 - "Error occurred, see {token}"`.',
          version: API_VERSION,
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'A user ticket token' },
            ticketQuery: { type: 'apiKey', in: 'query', name: 't', description: 'A user ticket token' },
            sntHmac: {
              type: 'apiKey',
              in: 'header',
              name: 'Authorization',
              description:
                'SNT-HMACv1 token={ticketId}, ts={unix seconds}, nonce={random}, sig={base64 HMAC-SHA256(secret, canonical)}',
            },
          },
        },
      },
    });
    await app.register(swaggerUi, {
      routePrefix: '/api/docs',
      uiConfig: { docExpansion: 'list', deepLinking: true },
      staticCSP: false,
    });
    app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'onecloud-openapi' },
);
