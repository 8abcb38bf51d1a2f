// SSH access as the SDK shows it: camelCase results of the access route and the ssh-keys routes.
import type { AccessResult as WireAccess, SshKeyInfo as WireSshKey } from '@mags/api';

/** `enableAccess(id, 22)`: how to reach the sandbox with OpenSSH, and the key that opens it (it alone). */
export interface AccessResult {
  success: boolean;
  /** The SSH gateway's host name or address. */
  sshHost: string;
  /** The SSH gateway's port. */
  sshPort: number;
  /** The user name to give ssh: `root`. */
  sshUser: string;
  /** An ed25519 private key in OpenSSH format, for `ssh -i`; keep it private (mode 0600). */
  sshPrivateKey: string;
}

/** One of your own registered SSH public keys. */
export interface SshKey {
  id: string;
  name: string;
  /** `SHA256:…`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** The public key line (`TYPE BASE64`). */
  publicKey: string;
  createdAt: string;
}

export interface AddSshKeyOptions {
  /** A label; default: the key's comment. */
  name?: string;
}

export function fromWireAccess(a: WireAccess): AccessResult {
  return {
    success: a.success,
    sshHost: a.ssh_host,
    sshPort: a.ssh_port,
    sshUser: a.ssh_user,
    sshPrivateKey: a.ssh_private_key,
  };
}

export function fromWireSshKey(k: WireSshKey): SshKey {
  return {
    id: k.id,
    name: k.name,
    fingerprint: k.fingerprint,
    publicKey: k.public_key,
    createdAt: k.created_at,
  };
}
