// Sandbox networking: one nftables table for the whole host (NAT out, nothing in, nothing to the host or private
// ranges), a /30 veth link per sandbox carved from the agent's /16, and a DNS forwarder sandboxes can reach.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { type AgentConfig, hostNames } from './config.js';
import type { HostHelper } from './hostd.js';
import { run } from './process.js';

export interface Link {
  slot: number;
  hostIf: string;
  hostIp: string;
  sandboxIp: string;
}

/** Hands out /30 links from the /16; slot n uses addresses 4n..4n+3. */
export class SlotAllocator {
  private readonly used = new Set<number>();
  private next = 1;
  private readonly base: [number, number];
  constructor(
    subnet: string,
    private readonly vethPrefix: string,
  ) {
    const [a, b] = subnet.split('.').map(Number);
    this.base = [a, b];
  }
  take(): Link {
    for (let i = 0; i < 16383; i++) {
      const slot = this.next;
      this.next = (this.next % 16382) + 1;
      if (!this.used.has(slot)) {
        this.used.add(slot);
        return this.link(slot);
      }
    }
    throw new Error('no free sandbox network slots on this host');
  }
  release(slot: number): void {
    this.used.delete(slot);
  }
  private link(slot: number): Link {
    const n = slot * 4;
    const ip = (k: number) => `${this.base[0]}.${this.base[1]}.${(n + k) >> 8}.${(n + k) & 255}`;
    return { slot, hostIf: `${this.vethPrefix}${slot}`, hostIp: ip(1), sandboxIp: ip(2) };
  }
}

/** Makes a network namespace by the host helper (no process); with a link, its veth pair and default route too. */
export async function addNetns(hostd: HostHelper, netns: string, link: Link | undefined): Promise<void> {
  if (link) await hostd.request('netns-add', netns, link.hostIf, link.hostIp, link.sandboxIp);
  else await hostd.request('netns-add', netns);
}

/** Deletes a network namespace (its veth pair goes with it); one already gone is not an error. */
export async function removeNetns(hostd: HostHelper, netns: string): Promise<void> {
  await hostd.request('netns-del', netns);
}

/** A network namespace with its veth link, made ahead for one sandbox. */
export interface SpareNetns {
  name: string;
  link: Link;
}

/**
 * Network namespaces made ahead of demand, so that making one (the costliest part of a sandbox on this kernel) is
 * not part of making a sandbox. Each is used by one sandbox only and deleted with it: a namespace keeps what its
 * processes leave behind (counters in /proc/net/snmp and /proc/net/dev, TIME_WAIT sockets, neighbour entries), which
 * the next sandbox, maybe another user's, would read.
 */
export class NetnsPool {
  private readonly ready: SpareNetns[] = [];
  private making = false;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly prefix: string,
    private readonly slots: SlotAllocator,
    private readonly hostd: HostHelper,
    private readonly logger: Logger,
    /** Delay before making more, so the spawn does not hold up the sandbox that just took one. */
    private readonly delayMs: number,
  ) {}

  /** A fresh namespace, or undefined (the caller makes its own); more are made a moment later. */
  take(): SpareNetns | undefined {
    const n = this.ready.shift();
    setTimeout(() => this.fill(), this.delayMs);
    return n;
  }

  fill(): void {
    if (this.making || this.closed || this.ready.length >= this.size) return;
    this.making = true;
    const batch = Array.from({ length: this.size - this.ready.length }, () => ({
      name: `${this.prefix}n${randomBytes(4).toString('hex')}`,
      link: this.slots.take(),
    }));
    Promise.all(batch.map((n) => addNetns(this.hostd, n.name, n.link)))
      .then(() => {
        this.ready.push(...batch);
        this.making = false;
        if (this.closed) return this.close();
      })
      .catch(async (err) => {
        this.logger.error({ err }, 'could not make network namespaces ahead');
        await this.remove(batch);
        this.making = false;
        // Try again later rather than spin; a sandbox that finds none makes its own.
        if (!this.closed) setTimeout(() => this.fill(), 5000).unref();
      });
  }

  /** Deletes the namespaces not taken. */
  async close(): Promise<void> {
    this.closed = true;
    await this.remove(this.ready.splice(0));
  }

  private async remove(list: SpareNetns[]): Promise<void> {
    if (!list.length) return;
    await Promise.all(list.map((n) => removeNetns(this.hostd, n.name).catch(() => {})));
    for (const n of list) this.slots.release(n.link.slot);
  }
}

/** Networks the host is directly attached to: a sandbox must not reach the host's neighbours either. */
async function hostLinkNetworks(config: AgentConfig): Promise<string[]> {
  const own = `${config.subnet.split('.').slice(0, 2).join('.')}.`;
  const { stdout } = await run('ip', ['-4', '-o', 'route', 'show', 'scope', 'link'], { allowFailure: true });
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n && /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(n) && !n.startsWith(own));
}

/** Loads the nftables table (replacing an older copy atomically) and enables forwarding. */
export async function setupHostNetwork(config: AgentConfig, dnsPort: number, logger: Logger): Promise<void> {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  const { table: TABLE, vethPrefix: VETH_PREFIX } = hostNames(config);
  const blocked = [...new Set([...config.blockedRanges, ...(await hostLinkNetworks(config))])];
  const ruleset = `
table inet ${TABLE}
delete table inet ${TABLE}
table inet ${TABLE} {
  set blocked4 { type ipv4_addr; flags interval; auto-merge; elements = { ${blocked.join(', ')} } }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "${VETH_PREFIX}*" meta l4proto { tcp, udp } th dport 53 redirect to :${dnsPort}
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname "${VETH_PREFIX}*" ct state established,related accept
    iifname "${VETH_PREFIX}*" meta l4proto { tcp, udp } th dport ${dnsPort} ct status dnat accept
    iifname "${VETH_PREFIX}*" counter drop
    meta l4proto { tcp, udp } th dport ${dnsPort} counter drop
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    oifname "${VETH_PREFIX}*" ct state established,related accept
    oifname "${VETH_PREFIX}*" counter drop
    iifname "${VETH_PREFIX}*" meta nfproto ipv6 counter drop
    iifname "${VETH_PREFIX}*" ip daddr @blocked4 counter drop
    iifname "${VETH_PREFIX}*" accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${config.subnet} oifname != "${VETH_PREFIX}*" masquerade
  }
}
`;
  await run('nft', ['-f', '-'], { input: ruleset, logger });
  logger.info({ blocked }, 'sandbox network rules loaded');
}

export async function teardownHostNetwork(config: AgentConfig): Promise<void> {
  await run('nft', ['delete', 'table', 'inet', hostNames(config).table], { allowFailure: true });
}

function upstreamResolver(config: AgentConfig): string {
  if (config.dnsUpstream) return config.dnsUpstream;
  const conf = readFileSync('/etc/resolv.conf', 'utf8');
  const m = conf.match(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)/m);
  return m ? m[1] : '127.0.0.1';
}

/**
 * A UDP DNS forwarder for sandboxes. Sandboxes query their gateway on port 53; nftables redirects that to this
 * socket, which relays to the host's resolver. Sandboxes themselves can never reach the (private) upstream.
 */
export class DnsForwarder {
  private socket?: dgram.Socket;
  port = 0;
  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const upstream = upstreamResolver(this.config);
    const socket = dgram.createSocket('udp4');
    this.socket = socket;
    socket.on('message', (query, from) => {
      if (query.length < 12) return;
      const relay = dgram.createSocket('udp4');
      const timer = setTimeout(() => relay.close(), 5000);
      relay.on('error', () => {
        clearTimeout(timer);
        relay.close();
      });
      relay.on('message', (answer) => {
        clearTimeout(timer);
        relay.close();
        socket.send(answer, from.port, from.address);
      });
      relay.send(query, 53, upstream);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.config.dnsPort, '0.0.0.0', () => {
        socket.off('error', reject);
        socket.on('error', (e) => this.logger.warn({ err: e }, 'dns forwarder error'));
        this.port = socket.address().port;
        resolve();
      });
    });
    this.logger.info({ port: this.port, upstream }, 'dns forwarder listening');
  }

  close(): void {
    this.socket?.close();
  }
}

export function resolvConf(link: Link | undefined): string {
  return link ? `nameserver ${link.hostIp}\noptions timeout:2 attempts:2\n` : '';
}

export function writeHostsFile(file: string): void {
  writeFileSync(file, '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n');
}
