/**
 * A node's view of its Redis Cluster, read from CLUSTER NODES: who is master of which slots, who
 * replicates whom, who is failed. CLUSTER SHARDS would say it too, but as nested RESP that redis-cli
 * prints flattened; CLUSTER NODES is one line per node.
 */

export interface ClusterNode {
  id: string;
  address: string;
  port: number;
  master: boolean;
  /** The master it replicates (a replica's). */
  masterId: string | null;
  /** Marked failed (`fail`, or `fail?` by this node alone). */
  failed: boolean;
  /** This node's cluster bus link to it is up. */
  connected: boolean;
  /** Slot ranges, inclusive. */
  slots: Array<[number, number]>;
}

/** `<id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...` */
export function clusterView(clusterNodes: string): ClusterNode[] {
  return clusterNodes.split('\n').filter((l) => l.trim()).map((line) => {
    const [id, addr, flags, master, , , , link, ...slots] = line.trim().split(' ');
    const address = addr!.split('@')[0]!;
    const flagSet = new Set(flags!.split(','));
    return {
      id: id!,
      address,
      port: Number(address.split(':').pop()),
      master: flagSet.has('master'),
      masterId: master === '-' ? null : master!,
      failed: flagSet.has('fail') || flagSet.has('fail?'),
      connected: link === 'connected',
      // Importing/migrating markers ("[1-<-id]") are not owned slots.
      slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
        const [a, b] = s.split('-').map(Number);
        return [a!, b ?? a!] as [number, number];
      }),
    };
  });
}
