/**
 * Names why a token request failed with one word from a small fixed set (`TOKEN_FAILURE_REASONS`),
 * for the `reason` label of the token failure metric: the RFC 6749 errors an operator acts on
 * first, then classes of transport and answer trouble. Pure.
 */
import { KeyError, ProxyError, TokenEndpointError } from '../lib/errors.js';
import type { TokenFailureReason } from '../lib/metrics.js';

const OAUTH_REASONS: Readonly<Record<string, TokenFailureReason>> = {
  invalid_client: 'invalid_client',
  invalid_grant: 'invalid_grant',
  unauthorized_client: 'unauthorized_client',
  invalid_scope: 'invalid_scope',
};

/** The `reason` label for a failed token request that ended with `error`. */
export function tokenFailureReason(error: unknown): TokenFailureReason {
  if (error instanceof KeyError) return 'key_invalid';
  if (!(error instanceof TokenEndpointError)) return error instanceof ProxyError && error.code === 'key_invalid' ? 'key_invalid' : 'other';
  switch (error.code) {
    case 'token_request_rejected':
      if (error.oauthError !== undefined) return OAUTH_REASONS[error.oauthError] ?? 'rejected';
      return error.httpStatus === 429 ? 'rate_limited' : 'rejected';
    case 'token_endpoint_unreachable':
      return error.httpStatus !== undefined && error.httpStatus >= 500 ? 'server_error' : 'unreachable';
    case 'token_endpoint_timeout':
      return 'timeout';
    case 'token_endpoint_tls':
      return 'tls';
    case 'token_response_invalid':
      return 'invalid_response';
    default:
      return 'other';
  }
}
