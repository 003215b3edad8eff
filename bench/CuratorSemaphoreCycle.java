/*
 * CuratorSemaphoreCycle: the Curator side of bench.py's uncontended
 * semaphore row.  Apache Curator's InterProcessSemaphoreV2(client, PATH,
 * MAX_LEASES), the recipe whose layout zksync's semaphores follow: a cycle is
 * acquire() then returnLease() of that lease, nothing else holding a lease.
 *
 *   java CuratorSemaphoreCycle HOSTS PATH MAX_LEASES WARMUP
 *
 * Connects, runs WARMUP untimed cycles, prints READY; then for each line N
 * read on stdin runs N cycles and prints each cycle's time in microseconds,
 * one a line, then END.  End of input closes the client.  bench.py compiles
 * it with javac at run time against Debian's jars in /usr/share/java.
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class CuratorSemaphoreCycle {
    public static void main(String[] args) throws Exception {
        String hosts = args[0], path = args[1];
        int max = Integer.parseInt(args[2]), warmup = Integer.parseInt(args[3]);
        CuratorFramework client = CuratorFrameworkFactory.builder().connectString(hosts)
            .sessionTimeoutMs(10000).connectionTimeoutMs(10000)
            .retryPolicy(new ExponentialBackoffRetry(100, 3)).build();
        client.start();
        client.blockUntilConnected();
        InterProcessSemaphoreV2 sem = new InterProcessSemaphoreV2(client, path, max);
        for (int i = 0; i < warmup; i++)
            sem.returnLease(sem.acquire());
        PrintStream out = new PrintStream(System.out, false);
        out.println("READY");
        out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        long[] us = new long[0];
        String line;
        while ((line = in.readLine()) != null) {
            int n = Integer.parseInt(line.trim());
            if (us.length < n)
                us = new long[n];
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                Lease lease = sem.acquire();
                sem.returnLease(lease);
                us[i] = (System.nanoTime() - t0) / 1000;
            }
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < n; i++)
                sb.append(us[i]).append('\n');
            sb.append("END\n");
            out.print(sb);
            out.flush();
        }
        client.close();
    }
}
