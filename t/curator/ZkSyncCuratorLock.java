/*
 * ZkSyncCuratorLock: a Java service's view of a zksync lock, for the soak
 * test (t/faults/soak.py).  It cycles Apache Curator's
 * InterProcessReadWriteLock(client, path).writeLock(), the recipe whose
 * node names zksync uses, so it queues with zksync backends on the same
 * path.  One line per event on stdout, flushed at once:
 *
 *   READY                      connected, about to cycle
 *   IN <nanoTime> <suspensions>   right after acquire() returned true
 *   OUT <nanoTime> <suspensions>  right before release()
 *   LOST <nanoTime> <state>    the connection went SUSPENDED or LOST while holding
 *   ERROR <what> <exception>   an acquire or release failed (the loop goes on)
 *   STOPPED                    no more cycles; the session stays open
 *
 * <suspensions> counts SUSPENDED/LOST events since start: a hold whose IN
 * and OUT counts differ (or that saw a LOST line) was not safely held and
 * the witness does not count it.  System.nanoTime() reads CLOCK_MONOTONIC
 * on Linux, as Python's time.monotonic_ns() does, so the times compare.
 *
 * stdin: "stop" ends the cycles (prints STOPPED), "quit" or end of input
 * closes the client and exits.
 *
 *   java ZkSyncCuratorLock HOSTS PATH [SESSION_MS [HOLD_MS_MAX [PAUSE_MS_MAX [SEED]]]]
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class ZkSyncCuratorLock {
    private static synchronized void out(String line) {
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
        int sessionMs = args.length > 2 ? Integer.parseInt(args[2]) : 4000;
        int holdMax = args.length > 3 ? Integer.parseInt(args[3]) : 20;
        int pauseMax = args.length > 4 ? Integer.parseInt(args[4]) : 30;
        Random rnd = new Random(args.length > 5 ? Long.parseLong(args[5]) : System.nanoTime());

        AtomicBoolean holding = new AtomicBoolean(false);
        AtomicLong suspensions = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean(false);
        CountDownLatch quit = new CountDownLatch(1);

        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(sessionMs)
                .connectionTimeoutMs(Math.max(1000, sessionMs / 2))
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000))
                .build();
        client.getConnectionStateListenable().addListener((c, state) -> {
            if (state == ConnectionState.SUSPENDED || state == ConnectionState.LOST) {
                // count first: an OUT printed after this sees the new count
                suspensions.incrementAndGet();
                if (holding.get()) {
                    out("LOST " + System.nanoTime() + " " + state);
                }
            }
        });
        client.start();
        if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
            out("ERROR connect timed out");
            System.exit(1);
        }

        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.trim().equals("stop")) {
                        stop.set(true);
                    } else if (line.trim().equals("quit")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // stdin gone: same as quit
            }
            stop.set(true);
            quit.countDown();
        });
        reader.setDaemon(true);
        reader.start();

        InterProcessMutex lock = new InterProcessReadWriteLock(client, path).writeLock();
        out("READY");
        while (!stop.get()) {
            long before = suspensions.get();
            boolean got;
            try {
                got = lock.acquire(2, TimeUnit.SECONDS);
            } catch (Exception e) {
                out("ERROR acquire " + e.getClass().getSimpleName());
                pause(100);
                continue;
            }
            if (!got) {
                continue;
            }
            holding.set(true);
            out("IN " + System.nanoTime() + " " + before);
            pause(rnd.nextInt(holdMax + 1));
            out("OUT " + System.nanoTime() + " " + suspensions.get());
            holding.set(false);
            try {
                lock.release();
            } catch (Exception e) {
                out("ERROR release " + e.getClass().getSimpleName());
            }
            pause(rnd.nextInt(pauseMax + 1));
        }
        out("STOPPED");
        quit.await();
        client.close();
    }
}
