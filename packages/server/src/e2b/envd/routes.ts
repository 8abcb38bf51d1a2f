// envd, the protocol of the process inside an E2B sandbox (commands, files, filesystem): a stub that registers
// nothing until the envd module (issue 14, branch e2b-envd) replaces this file. The signature is the contract.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ExecService } from '../../jobs/exec.js';
import type { SandboxLifecycle } from '../../jobs/lifecycle.js';
import type { E2bSandboxes } from '../sandboxes.js';

export interface EnvdDeps {
  resolve: E2bSandboxes['resolve'];
  exec: ExecService;
  lifecycle: SandboxLifecycle;
  logger: Logger;
}

export function registerEnvd(_app: FastifyInstance, _deps: EnvdDeps): void {}
