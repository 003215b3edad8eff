/*
 * ZkSyncCuratorSemaphore: a Java service's view of a zksync semaphore, for
 * t/014_curator_semaphore.pl.  It uses Apache Curator's
 * InterProcessSemaphoreV2(client, PATH, MAX_LEASES), the recipe whose
 * layout zksync's semaphores follow, so its leases count with those of
 * zksync backends on {root}/semaphores/{name}.
 *
 * It reads one command a line on stdin and answers on stdout, one line per
 * event, flushed at once:
 *
 *   (start)                  READY
 *   hold K                   acquire(K) with no time limit: HELD <leases held>
 *   acquire MS               acquire(1, MS ms): ACQUIRED <leases held>, or
 *                            TIMEOUT when Curator's acquire returned null
 *   release                  return the newest lease: RELEASED <leases held>
 *   cycle MS HOLD PAUSE SEED for MS ms: acquire(1, 2 s), hold 0..HOLD ms,
 *                            release, pause 0..PAUSE ms; a line per hold:
 *                              IN <nanoTime> <suspensions>   after acquire returned
 *                              OUT <nanoTime> <suspensions>  right before release
 *                            then CYCLED <holds> <timeouts>
 *   quit (or end of input)   return every lease, close the client: BYE
 *
 * An acquire or release that throws prints ERROR <command> <exception>.
 * <suspensions> counts SUSPENDED/LOST connection events since start; a hold
 * whose IN and OUT counts differ may not have been held throughout.
 * System.nanoTime() reads CLOCK_MONOTONIC on Linux, as Perl's
 * Time::HiRes::clock_gettime(CLOCK_MONOTONIC) does, so the times compare.
 *
 *   java ZkSyncCuratorSemaphore HOSTS PATH MAX_LEASES [SESSION_MS]
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.Deque;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class ZkSyncCuratorSemaphore {
    private static final AtomicLong suspensions = new AtomicLong();

    private static void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void pause(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        String path = args[1];
        int maxLeases = Integer.parseInt(args[2]);
        int sessionMs = args.length > 3 ? Integer.parseInt(args[3]) : 4000;

        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(Math.max(1000, sessionMs / 2))
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000))
                .build();
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.SUSPENDED || state == ConnectionState.LOST) {
                suspensions.incrementAndGet();
            }
        });
        client.start();
        if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
            out("ERROR connect timed out");
            System.exit(1);
        }

        InterProcessSemaphoreV2 sem = new InterProcessSemaphoreV2(client, path, maxLeases);
        Deque<Lease> held = new ArrayDeque<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        out("READY");

        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.trim().split("\\s+");
            if (w[0].isEmpty()) {
                continue;
            }
            if (w[0].equals("quit")) {
                break;
            }
            try {
                switch (w[0]) {
                    case "hold": {
                        held.addAll(sem.acquire(Integer.parseInt(w[1])));
                        out("HELD " + held.size());
                        break;
                    }
                    case "acquire": {
                        Collection<Lease> got = sem.acquire(1, Long.parseLong(w[1]), TimeUnit.MILLISECONDS);
                        if (got == null) {
                            out("TIMEOUT");
                        } else {
                            held.addAll(got);
                            out("ACQUIRED " + held.size());
                        }
                        break;
                    }
                    case "release": {
                        Lease lease = held.pollLast();
                        if (lease != null) {
                            lease.close();   // throws, where returnLease would log
                        }
                        out("RELEASED " + held.size());
                        break;
                    }
                    case "cycle": {
                        cycle(sem, Long.parseLong(w[1]), Integer.parseInt(w[2]),
                              Integer.parseInt(w[3]), new Random(Long.parseLong(w[4])));
                        break;
                    }
                    default:
                        out("ERROR unknown command " + w[0]);
                }
            } catch (Exception e) {
                out("ERROR " + w[0] + " " + e);
            }
        }
        sem.returnAll(held);
        client.close();
        out("BYE");
    }

    private static void cycle(InterProcessSemaphoreV2 sem, long ms, int holdMax, int pauseMax,
                              Random rnd) {
        long end = System.nanoTime() + ms * 1000000L;
        int holds = 0;
        int timeouts = 0;
        while (System.nanoTime() < end) {
            long before = suspensions.get();
            Collection<Lease> got;
            try {
                got = sem.acquire(1, 2, TimeUnit.SECONDS);
            } catch (Exception e) {
                out("ERROR acquire " + e);
                pause(100);
                continue;
            }
            if (got == null) {
                timeouts++;
                continue;
            }
            out("IN " + System.nanoTime() + " " + before);
            pause(rnd.nextInt(holdMax + 1));
            out("OUT " + System.nanoTime() + " " + suspensions.get());
            try {
                for (Lease lease : got) {
                    lease.close();
                }
            } catch (Exception e) {
                out("ERROR release " + e);
            }
            holds++;
            pause(rnd.nextInt(pauseMax + 1));
        }
        out("CYCLED " + holds + " " + timeouts);
    }
}
