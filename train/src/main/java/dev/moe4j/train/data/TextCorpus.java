package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * Training and validation text from files and folders, one {@link Document} per file, named after the file so
 * that experiments can tell domains apart. A file {@code X.valid.txt} beside {@code X.txt} is X's validation
 * split; a file without one gives up its last {@code validFraction} (cut at a line end) instead.
 */
public record TextCorpus(List<Document> train, List<Document> validation) {
    /** One file's text; {@code name} is the file name without {@code .txt} (and without {@code .valid}). */
    public record Document(String name, String text) {
    }

    public TextCorpus {
        train = List.copyOf(train);
        validation = List.copyOf(validation);
    }

    /** Reads text files, and the text files (*.txt, *.md, *.py, *.java, …) of folders, in name order. */
    public static TextCorpus load(List<Path> paths, double validFraction) {
        if (paths.isEmpty()) {
            throw new BadInputException("no training data given (expected text files or folders)");
        }
        List<Path> files = new ArrayList<>();
        for (Path p : paths) {
            if (Files.isDirectory(p)) {
                try (Stream<Path> s = Files.list(p)) {
                    s.filter(Files::isRegularFile).filter(TextCorpus::looksLikeText).sorted(Comparator.comparing(Path::toString)).forEach(files::add);
                } catch (IOException e) {
                    throw new BadInputException(p + ": cannot list folder (" + e.getMessage() + ")");
                }
            } else if (Files.isRegularFile(p)) {
                files.add(p);
            } else {
                throw new BadInputException(p + ": no such file or folder (expected training text)");
            }
        }
        var train = new ArrayList<Document>();
        var validation = new ArrayList<Document>();
        for (Path f : files) {
            String fileName = f.getFileName().toString();
            if (fileName.endsWith(".valid.txt")) {
                continue; // read beside its training file
            }
            String name = fileName.endsWith(".txt") ? fileName.substring(0, fileName.length() - 4) : fileName;
            String text = read(f);
            Path validFile = f.resolveSibling(name + ".valid.txt");
            if (Files.isRegularFile(validFile)) {
                train.add(new Document(name, text));
                validation.add(new Document(name, read(validFile)));
            } else {
                int cut = splitPoint(text, validFraction);
                train.add(new Document(name, text.substring(0, cut)));
                if (cut < text.length()) {
                    validation.add(new Document(name, text.substring(cut)));
                }
            }
        }
        if (train.isEmpty() || train.stream().allMatch(d -> d.text().isEmpty())) {
            throw new BadInputException(paths + ": no training text found");
        }
        return new TextCorpus(train, validation);
    }

    /** Total characters of training text. */
    public long trainCharacters() {
        return train.stream().mapToLong(d -> d.text().length()).sum();
    }

    private static boolean looksLikeText(Path p) {
        String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
        return n.endsWith(".txt") || n.endsWith(".md") || n.endsWith(".py") || n.endsWith(".java") || n.endsWith(".text");
    }

    /** Where the last validFraction of the text starts, moved forward to the next line start. */
    static int splitPoint(String text, double validFraction) {
        if (validFraction <= 0) {
            return text.length();
        }
        int cut = (int) Math.floor(text.length() * (1 - validFraction));
        if (cut == 0 || text.charAt(cut - 1) == '\n') {
            return cut;
        }
        int lineStart = text.indexOf('\n', cut);
        return lineStart < 0 ? cut : lineStart + 1;
    }

    private static String read(Path f) {
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(f))).toString();
        } catch (CharacterCodingException e) {
            throw new BadInputException(f + ": not UTF-8 text");
        } catch (IOException e) {
            throw new BadInputException(f + ": cannot read (" + e.getMessage() + ")");
        }
    }
}
