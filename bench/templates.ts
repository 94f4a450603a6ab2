// The three CNI templates of the core benchmark's "3 templates" workload (one with a
// pointer to the primary CNI's config) and that config, as found on the node.
export const TEMPLATES: Record<string, string> = {
  // A pointer on a line of its own: the original replaces that whole line with the
  // file (sed r + d), cni-node replaces the pointer; both then write the same config.
  '05-multus.conf':
    '{\n  "cniVersion": "0.3.1",\n  "name": "multus-cni-network",\n  "type": "multus",\n  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",\n  "delegates": [\n__10-calico.conflist__\n  ]\n}\n',
  '20-bridge.conf':
    '{\n  "cniVersion": "0.3.1",\n  "name": "mynet",\n  "type": "bridge",\n  "bridge": "cni0",\n  "isGateway": true,\n  "ipMasq": true,\n  "ipam": { "type": "host-local", "subnet": "10.22.0.0/16", "routes": [{ "dst": "0.0.0.0/0" }] }\n}\n',
  '30-macvlan.conflist':
    '{\n  "cniVersion": "0.3.1",\n  "name": "macvlan-net",\n  "plugins": [\n    { "type": "macvlan", "master": "eth0", "mode": "bridge", "ipam": { "type": "host-local", "subnet": "192.168.1.0/24" } },\n    { "type": "tuning", "sysctl": { "net.core.somaxconn": "500" } }\n  ]\n}\n',
};
export const CALICO =
  '{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","ipam":{"type":"calico-ipam"}},{"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}\n';
