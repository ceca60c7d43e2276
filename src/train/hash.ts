// The config hash a checkpoint carries, so that a resume under a changed config is refused.
import crypto from 'node:crypto';
import type { RunSettings } from '../kinds/kind.ts';
import { canonical } from '../util/json.ts';

/**
 * SHA-256 (hex) of everything that shapes the training trajectory: the resolved settings without their source
 * path, description and name, and without data.download (whether missing files may be fetched changes no number,
 * and runs from before it existed keep their hash).
 */
export function configHash(settings: RunSettings): string {
  const { source: _source, description: _description, name: _name, ...rest } = settings;
  const data = (rest as { data?: unknown }).data;
  if (data !== null && typeof data === 'object' && 'download' in data) {
    const { download: _download, ...kept } = data as Record<string, unknown>;
    (rest as { data?: unknown }).data = kept;
  }
  return crypto.createHash('sha256').update(canonical(rest)).digest('hex');
}
