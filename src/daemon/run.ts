import { CniNodeError } from '../core/errors.js';
import type { ListSpec } from '../core/lists.js';
import type { Kind } from '../core/plan.js';
import type { Values } from '../cli/args.js';

// Placeholder until the daemon lands (issue 4): the command exists but refuses to run.
export async function runCommand(_values: Values, _lists: Partial<Record<Kind, ListSpec>>): Promise<number> {
  throw new CniNodeError('usage', 'cni-node run is not available in this build yet');
}
