/*
 * ZkSyncCuratorDoubleBarrier: participants of Apache Curator's
 * DistributedDoubleBarrier next to zksync's, for t/021_go_interop.pl.
 * One JVM runs K participants, each with a client (and so a ZooKeeper
 * session) of its own, on one barrier of N members at PATH.  enter and
 * leave run in a thread of their own, so the test can ask several
 * participants to enter or leave at once.  One line per event on stdout,
 * flushed at once:
 *
 *   READY                   every client is connected
 *   ENTERED i | LEFT i      participant i's enter() / leave() returned
 *   ERROR i <exception>     it threw
 *   BYE                     clients closed, about to exit
 *
 * stdin: "enter i", "leave i", "quit" (or end of input).
 *
 *   java ZkSyncCuratorDoubleBarrier HOSTS PATH N K
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class ZkSyncCuratorDoubleBarrier {
    private static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private interface Step {
        void run() throws Exception;
    }

    /* Run one participant's step in a thread of its own, reporting its end. */
    private static void inThread(int i, String done, Step step) {
        Thread t = new Thread(() -> {
            try {
                step.run();
                out(done + " " + i);
            } catch (Exception e) {
                out("ERROR " + i + " " + e);
            }
        });
        t.setDaemon(true);
        t.start();
    }

    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        String path = args[1];
        int members = Integer.parseInt(args[2]);
        int k = Integer.parseInt(args[3]);

        List<CuratorFramework> clients = new ArrayList<>();
        List<DistributedDoubleBarrier> barriers = new ArrayList<>();
        for (int i = 0; i < k; i++) {
            CuratorFramework client = CuratorFrameworkFactory.builder()
                    .connectString(hosts)
                    .sessionTimeoutMs(4000)
                    .connectionTimeoutMs(2000)
                    .retryPolicy(new ExponentialBackoffRetry(100, 10, 1000))
                    .build();
            client.start();
            if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
                out("ERROR " + i + " connect timed out");
                System.exit(1);
            }
            clients.add(client);
            barriers.add(new DistributedDoubleBarrier(client, path, members));
        }
        out("READY");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
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
                int i = Integer.parseInt(w[1]);
                DistributedDoubleBarrier b = barriers.get(i);
                switch (w[0]) {
                    case "enter":
                        inThread(i, "ENTERED", b::enter);
                        break;
                    case "leave":
                        inThread(i, "LEFT", b::leave);
                        break;
                    default:
                        out("ERROR " + i + " unknown command " + w[0]);
                }
            } catch (RuntimeException e) {
                out("ERROR - " + line + ": " + e);
            }
        }
        for (CuratorFramework client : clients) {
            client.close();
        }
        out("BYE");
    }
}
