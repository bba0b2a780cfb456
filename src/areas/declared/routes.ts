import type { FastifyInstance } from 'fastify';
import { NotImplementedError } from '../../errors.js';
import type { UserApi } from '../common/schemas.js';

/**
 * Operations of the contract (spec §4) that are declared but not built yet. They answer 501
 * after everything else a real operation would do (routing, negotiation, authentication and
 * authorization with the operation's scope), so clients can tell "not yet" from "no such thing". An area that implements one of
 * them removes it from this list.
 */
export const DECLARED: {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  scope: UserApi;
  summary: string;
}[] = [
  {
    method: 'PUT',
    url: '/api/user/availability/v1/:domain/:user',
    scope: 'USER_INFO',
    summary: 'Set availability',
  },
  {
    method: 'GET',
    url: '/api/user/acd-attendant-group/v1/:domain/:user',
    scope: 'DISTRIBUTION_GROUP',
    summary: 'My ACD/attendant groups',
  },
  {
    method: 'GET',
    url: '/api/user/acd-attendant-group/v1/:domain/:user/:group/:groupDomain',
    scope: 'DISTRIBUTION_GROUP',
    summary: 'One ACD/attendant group',
  },
  {
    method: 'POST',
    url: '/api/user/acd-attendant-group/:domain/:user/:group/:groupDomain/agents/:agent',
    scope: 'DISTRIBUTION_GROUP',
    summary: 'Agent login/logout',
  },
  {
    method: 'GET',
    url: '/api/user/acd-attendant-group/:domain/:user/:group',
    scope: 'DISTRIBUTION_GROUP',
    summary: 'Deprecated: one group',
  },
  {
    method: 'GET',
    url: '/api/user/acd-attendant-group/:domain/:user/:group/:groupDomain',
    scope: 'DISTRIBUTION_GROUP',
    summary: 'Deprecated: one group',
  },
  {
    method: 'GET',
    url: '/api/queue/statistics/v1/:domain/:user',
    scope: 'QUEUE_STATISTICS',
    summary: 'Statistics of my queues',
  },
  {
    method: 'GET',
    url: '/api/contacts/search/v1/:domain/:user',
    scope: 'CONTACT',
    summary: 'Directory search',
  },
  {
    method: 'GET',
    url: '/api/contacts/personal/v1/:domain/:user',
    scope: 'PERSONAL_CONTACTS',
    summary: 'Personal contacts',
  },
  {
    method: 'POST',
    url: '/api/contacts/personal/v1/:domain/:user',
    scope: 'PERSONAL_CONTACTS',
    summary: 'Add a personal contact',
  },
  {
    method: 'GET',
    url: '/api/contacts/personal/v1/:domain/:user/:contactId',
    scope: 'PERSONAL_CONTACTS',
    summary: 'One personal contact',
  },
  {
    method: 'PUT',
    url: '/api/contacts/personal/v1/:domain/:user/:contactId',
    scope: 'PERSONAL_CONTACTS',
    summary: 'Update a personal contact',
  },
  {
    method: 'DELETE',
    url: '/api/contacts/personal/v1/:domain/:user/:contactId',
    scope: 'PERSONAL_CONTACTS',
    summary: 'Delete a personal contact',
  },
  { method: 'POST', url: '/api/user/sms/:number', scope: 'SMS', summary: 'Send an SMS' },
  {
    method: 'GET',
    url: '/api/callcontrol/v1/:domain/:user/calls',
    scope: 'CALL_CONTROL',
    summary: 'My calls',
  },
  {
    method: 'POST',
    url: '/api/callcontrol/v1/:domain/:user/calls',
    scope: 'CALL_CONTROL',
    summary: 'Start a call from a device',
  },
  {
    method: 'GET',
    url: '/api/callcontrol/v1/:domain/:user/calls/:callId',
    scope: 'CALL_CONTROL',
    summary: 'One call',
  },
  {
    method: 'DELETE',
    url: '/api/callcontrol/v1/:domain/:user/calls/:callId',
    scope: 'CALL_CONTROL',
    summary: 'Hang up',
  },
  {
    method: 'PUT',
    url: '/api/callcontrol/v1/:domain/:user/calls/:callId/:action',
    scope: 'CALL_CONTROL',
    summary: 'Hold, resume or answer',
  },
  {
    method: 'POST',
    url: '/api/callcontrol/v1/:domain/:user/calls/:callId/:action',
    scope: 'CALL_CONTROL',
    summary: 'DTMF, move or transfer',
  },
  {
    method: 'POST',
    url: '/api/callsetup/v1/:domain/:user',
    scope: 'CALL_SETUP',
    summary: 'Ring me first, then the destination',
  },
  { method: 'GET', url: '/api/linestate/v1/:domain/:user', scope: 'LINE_STATE', summary: 'Line state' },
  {
    method: 'GET',
    url: '/api/communicationlog/v1/:domain/:user',
    scope: 'COMMUNICATION_LOG',
    summary: 'Call history',
  },
  { method: 'GET', url: '/api/reports/v1/:domain/:user', scope: 'REPORTS', summary: 'Call statistics' },
  { method: 'GET', url: '/api/recording/v1/:domain/:user', scope: 'CALL_RECORDING', summary: 'Recordings' },
  {
    method: 'GET',
    url: '/api/recording/v1/:domain/:user/:id',
    scope: 'CALL_RECORDING',
    summary: 'Recording metadata',
  },
  {
    method: 'DELETE',
    url: '/api/recording/v1/:domain/:user/:id',
    scope: 'CALL_RECORDING',
    summary: 'Delete a recording',
  },
  {
    method: 'GET',
    url: '/api/recording/v1/:domain/:user/:id/audio',
    scope: 'CALL_RECORDING',
    summary: 'Recording audio',
  },
  {
    method: 'GET',
    url: '/api/voicemail/settings/v1/:domain/:user',
    scope: 'VOICEMAIL',
    summary: 'Voicemail settings',
  },
  {
    method: 'PUT',
    url: '/api/voicemail/settings/v1/:domain/:user',
    scope: 'VOICEMAIL',
    summary: 'Update voicemail settings',
  },
];

export async function declaredRoutes(app: FastifyInstance): Promise<void> {
  for (const d of DECLARED) {
    app.route({
      method: d.method,
      url: d.url,
      schema: {
        summary: `${d.summary} (not implemented yet: 501)`,
        tags: [d.scope],
      },
      config: { access: { kind: 'user', scope: d.scope } },
      handler: async () => {
        throw new NotImplementedError(`${d.method} ${d.url} is part of the API but not implemented yet`);
      },
    });
  }
}
