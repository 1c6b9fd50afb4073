package dev.moe4j.cli;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Gives the process back the standard error that the {@code moe4j} launcher set aside. The launcher starts the JVM
 * with its standard error through a filter, so that the JVM's start-up notice about the incubating Vector API is
 * dropped, and hands the real standard error over as another file descriptor ({@code -Dmoe4j.stderr.fd=3}). A filter
 * process delivers lines late, after what the program writes to standard output meanwhile (chat's banner came after
 * its prompt); so once the JVM is up, that descriptor is put back in place of the filtered one (dup2), and
 * everything the program writes to standard error arrives in order. Without the property (tests, a plain
 * {@code java -jar}) nothing changes.
 */
final class LauncherStderr {
    static final String PROPERTY = "moe4j.stderr.fd";
    private static final int STDERR = 2;

    private LauncherStderr() {
    }

    /** Puts the launcher's standard error back as file descriptor 2, if the launcher handed one over. */
    static void restore() {
        String property = System.getProperty(PROPERTY);
        if (property == null) {
            return;
        }
        try {
            int fd = Integer.parseInt(property.strip());
            Linker linker = Linker.nativeLinker();
            var ints = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT);
            MethodHandle dup2 = linker.downcallHandle(linker.defaultLookup().find("dup2").orElseThrow(), ints);
            MethodHandle close = linker.downcallHandle(linker.defaultLookup().find("close").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            System.err.flush();
            if ((int) dup2.invokeExact(fd, STDERR) == STDERR) {
                int ignored = (int) close.invokeExact(fd);
            }
        } catch (Throwable cannot) {
            // The filtered standard error still works; only the order of its lines against standard output may suffer.
        }
    }
}
