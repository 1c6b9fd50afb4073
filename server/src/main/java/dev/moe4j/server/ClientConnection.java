package dev.moe4j.server;

import com.sun.net.httpserver.HttpExchange;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * Whether the client of a request is still there, asked between two forward passes of its generation, so that a
 * client that leaves stops its generation even when nothing is being written to it (a request answered whole, a
 * long prefill). The JDK's HTTP server tells a handler that its client left only when a write fails, so the
 * connection's socket is reached inside the server's implementation ({@code sun.net.httpserver}, which the jar's
 * Add-Opens and the tests' JVM flags open to moe4j); a read that does not block then returns end-of-stream once
 * the client has closed its side. Where that implementation cannot be reached, every client counts as present and
 * a request answered whole runs to its end, as it did before.
 */
final class ClientConnection {
    /** The channel of each exchange, reached through the server's implementation; null where that failed. */
    private static final Access ACCESS = Access.find();

    private final HttpExchange exchange;
    private final SocketChannel channel;
    private boolean gone;
    private boolean probing;

    ClientConnection(HttpExchange exchange) {
        this.exchange = exchange;
        this.channel = ACCESS == null ? null : ACCESS.channel(exchange);
        this.probing = channel != null;
    }

    /**
     * True once the client has closed the connection or it has failed. Data from the client (a pipelined next
     * request) cannot be put back once read: then this stops looking and the connection closes after the
     * response, which the client of a pipelined request must be ready for.
     */
    boolean gone() {
        if (gone || !probing) {
            return gone;
        }
        try {
            channel.configureBlocking(false);
            try {
                int read = channel.read(ByteBuffer.allocate(1));
                if (read < 0) {
                    gone = true;
                } else if (read > 0) {
                    probing = false;
                    exchange.getResponseHeaders().set("Connection", "close");
                }
            } finally {
                channel.configureBlocking(true);
            }
        } catch (IOException e) {
            gone = true; // reset by the peer
        } catch (RuntimeException e) {
            probing = false; // the implementation did something unexpected: look no further
        }
        return gone;
    }

    /** The private path from an exchange to its socket channel in the JDK's server. */
    private record Access(Field impl, Method connection, Method channel) {
        static Access find() {
            try {
                Class<?> exchange = Class.forName("sun.net.httpserver.HttpExchangeImpl");
                Field impl = exchange.getDeclaredField("impl");
                Method connection = impl.getType().getDeclaredMethod("getConnection");
                Method channel = connection.getReturnType().getDeclaredMethod("getChannel");
                impl.setAccessible(true);
                connection.setAccessible(true);
                channel.setAccessible(true);
                return new Access(impl, connection, channel);
            } catch (ReflectiveOperationException | RuntimeException e) {
                return null; // another JDK, or the package is not opened to moe4j
            }
        }

        SocketChannel channel(HttpExchange exchange) {
            try {
                if (!impl.getDeclaringClass().isInstance(exchange)) {
                    return null;
                }
                return (SocketChannel) channel.invoke(connection.invoke(impl.get(exchange)));
            } catch (ReflectiveOperationException | RuntimeException e) {
                return null;
            }
        }
    }
}
