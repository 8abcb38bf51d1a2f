// SSH into sandboxes: the access route (a key pair for one sandbox) and a user's own registered public keys.
import { type Static, Type } from 'typebox';

export const AccessRequest = Type.Object(
  {
    port: Type.Integer({
      minimum: 1,
      maximum: 65535,
      description:
        'The port in the sandbox to open access to: 22 gives SSH access, any other port a URL through the router',
    }),
    private: Type.Optional(
      Type.Boolean({
        description: "URL access only: the URL answers only requests carrying the owner's token (header or cookie)",
      }),
    ),
  },
  { additionalProperties: false },
);
export type AccessRequest = Static<typeof AccessRequest>;

export const AccessResult = Type.Object(
  {
    success: Type.Boolean(),
    ssh_host: Type.String({ description: "The SSH gateway's host name or address" }),
    ssh_port: Type.Integer({ description: "The SSH gateway's port" }),
    ssh_user: Type.String({ description: 'The user name to give ssh (root; any name works with this key)' }),
    ssh_private_key: Type.String({
      description:
        'A fresh ed25519 private key in OpenSSH format that opens this sandbox only, for `ssh -i KEY -p PORT root@HOST`; only its public half is kept by the server',
    }),
  },
  { $id: 'AccessResult' },
);
export type AccessResult = Static<typeof AccessResult>;

/** Longest public key line accepted (an RSA 16384 key is about 2.8 KB). */
export const MAX_PUBLIC_KEY = 16 * 1024;

export const SshKeyAdd = Type.Object(
  {
    public_key: Type.String({
      minLength: 1,
      maxLength: MAX_PUBLIC_KEY,
      description:
        'One OpenSSH public key line: "TYPE BASE64 [COMMENT]" (ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa)',
    }),
    name: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: "A label; defaults to the key's comment" }),
    ),
  },
  { additionalProperties: false },
);
export type SshKeyAdd = Static<typeof SshKeyAdd>;

export const SshKeyInfo = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    fingerprint: Type.String({ description: 'SHA256:… as ssh-keygen -l prints it' }),
    public_key: Type.String({ description: 'The public key line, as stored' }),
    created_at: Type.String(),
  },
  { $id: 'SshKeyInfo' },
);
export type SshKeyInfo = Static<typeof SshKeyInfo>;
export const SshKeyList = Type.Object({ keys: Type.Array(SshKeyInfo) });
export type SshKeyList = Static<typeof SshKeyList>;

/** The SSH gateway's default port (`mags server --ssh-port`). */
export const DEFAULT_SSH_PORT = 2222;
