package dev.moe4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A shared library opened through FFM, and downcall handles to its functions. Candidates are tried in order (a
 * soname the dynamic linker resolves, then absolute paths); the first that opens wins, and the reasons the others
 * failed are kept for the error message.
 */
final class NativeLibrary {
    private static final Linker LINKER = Linker.nativeLinker();

    private final String file;
    private final SymbolLookup lookup;

    private NativeLibrary(String file, SymbolLookup lookup) {
        this.file = file;
        this.lookup = lookup;
    }

    /** The library loaded from the first candidate that opens; the message lists what was tried. */
    static NativeLibrary open(String what, List<String> candidates) {
        var failures = new ArrayList<String>();
        for (String candidate : candidates) {
            if (candidate.startsWith("/") && !Files.isRegularFile(Path.of(candidate))) {
                continue;
            }
            try {
                return new NativeLibrary(candidate, SymbolLookup.libraryLookup(candidate, Arena.global()));
            } catch (IllegalArgumentException e) {
                failures.add(candidate + " (" + e.getMessage() + ")");
            }
        }
        throw new IllegalStateException(what + " not found; tried " + (failures.isEmpty() ? candidates : failures));
    }

    /** The library's file as it was opened. */
    String file() {
        return file;
    }

    boolean has(String symbol) {
        return lookup.find(symbol).isPresent();
    }

    /** A handle to the named function; fails when the library lacks it. */
    MethodHandle function(String name, MemoryLayout result, MemoryLayout... arguments) {
        return function(name, FunctionDescriptor.of(result, arguments));
    }

    MethodHandle function(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment symbol = lookup.find(name)
                .orElseThrow(() -> new IllegalStateException(file + " has no function " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }

    /** A handle to the named function, or empty when this version of the library lacks it. */
    Optional<MethodHandle> optionalFunction(String name, FunctionDescriptor descriptor) {
        return lookup.find(name).map(symbol -> LINKER.downcallHandle(symbol, descriptor));
    }

    /** A NUL-terminated C string returned by a library, as a Java string ("" for NULL). */
    static String cString(MemorySegment pointer) {
        return pointer.equals(MemorySegment.NULL) ? "" : pointer.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
