// Placeholder until kube-watch compatibility lands (issue 4).
export async function watchMain(_args: string[]): Promise<number> {
  process.stderr.write('cni-node watch is not available in this build yet\n');
  return 2;
}
