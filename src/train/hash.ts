// The config hash a checkpoint carries, so that a resume under a changed config is refused.
import crypto from 'node:crypto';
import type { RunSettings } from '../kinds/kind.ts';
import { canonical } from '../util/json.ts';

/**
 * SHA-256 (hex) of everything that shapes the training trajectory: the resolved settings without their source
 * path, description and name.
 */
export function configHash(settings: RunSettings): string {
  const { source: _source, description: _description, name: _name, ...rest } = settings;
  return crypto.createHash('sha256').update(canonical(rest)).digest('hex');
}
