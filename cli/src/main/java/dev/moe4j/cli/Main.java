package dev.moe4j.cli;

import dev.moe4j.cli.bench.BenchCommand;
import dev.moe4j.cli.experiment.ExperimentCommand;
import dev.moe4j.cli.report.ReportCommand;
import dev.moe4j.cli.train.TrainCommand;
import dev.moe4j.core.BadInputException;
import dev.moe4j.model.ModelFolder;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.InputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;

/** The {@code moe4j} command: a thin layer of subcommands over the library. */
@Command(name = "moe4j",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "A Mixture-of-Experts transformer engine for the JVM.",
        subcommands = {
                CommandLine.HelpCommand.class,
                TrainCommand.class,
                dev.moe4j.cli.vision.TrainVisionCommand.class,
                dev.moe4j.cli.vision.ClassifyCommand.class,
                ExperimentCommand.class,
                ReportCommand.class,
                InspectCommand.class,
                GenerateCommand.class,
                ScoreCommand.class,
                RouteEvalCommand.class,
                PruneCommand.class,
                ChatCommand.class,
                ServeCommand.class,
                ConvertCommand.class,
                QuantizeCommand.class,
                MergeCommand.class,
                BenchCommand.class,
        })
public final class Main implements Runnable {
    /** Exit status for a mistake in the user's input (bad file, bad field, bad option). */
    public static final int EXIT_BAD_INPUT = 2;
    /** Exit status when the Java heap ran out (said in one line, with the option that gives more). */
    public static final int EXIT_OUT_OF_MEMORY = 3;

    /** How the commands open a model folder's weights: every tensor checked first, mapped on the CPU or copied to the GPU. */
    static final ModelFolder.Opener DEFAULT_MODELS = ModelFolder.Opener.CHECKPOINT;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        LauncherStderr.restore();
        var console = System.console();
        var context = new CommandContext(System.in, console != null && console.isTerminal(), DEFAULT_MODELS);
        var out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), true);
        System.exit(run(args, out, new PrintWriter(System.err, true), context));
    }

    /** Runs the command line with the given streams and returns the exit status (used by the CLI tests). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        return run(args, out, err, new CommandContext(InputStream.nullInputStream(), false, DEFAULT_MODELS));
    }

    /** Runs the command line with the given standard input too (the chat reads it). */
    public static int run(String[] args, InputStream in, PrintWriter out, PrintWriter err) {
        return run(args, out, err, new CommandContext(in, false, DEFAULT_MODELS));
    }

    static int run(String[] args, PrintWriter out, PrintWriter err, CommandContext context) {
        CommandLine.IFactory factory = new CommandLine.IFactory() {
            @Override
            public <K> K create(Class<K> type) throws Exception {
                K made = CommandLine.defaultFactory().create(type);
                if (made instanceof CommandContext.User user) {
                    user.context(context);
                }
                return made;
            }
        };
        var commandLine = new CommandLine(new Main(), factory);
        commandLine.setOut(out);
        commandLine.setErr(err);
        commandLine.setExecutionExceptionHandler((ex, cl, parseResult) -> {
            if (ex instanceof BadInputException) {
                cl.getErr().println("moe4j: error: " + ex.getMessage());
                cl.getErr().flush();
                return EXIT_BAD_INPUT;
            }
            throw ex;
        });
        commandLine.setParameterExceptionHandler((ex, unused) -> {
            var cl = ex.getCommandLine();
            // Some of picocli's messages start with their own "Error: ", which would follow ours.
            cl.getErr().println("moe4j: error: " + ex.getMessage().replaceFirst("^Error: ", ""));
            cl.getErr().println("Try 'moe4j " + cl.getCommandSpec().qualifiedName().replaceFirst("^moe4j ?", "")
                    .concat(" --help").trim() + "' for more information.");
            cl.getErr().flush();
            return EXIT_BAD_INPUT;
        });
        try {
            return commandLine.execute(args);
        } catch (OutOfMemoryError e) {
            long heap = Runtime.getRuntime().maxMemory();
            err.println("moe4j: error: out of Java heap (" + (heap >> 20) + " MiB); give the JVM more with"
                    + " MOE4J_JAVA_OPTS=-Xmx<size>, e.g. MOE4J_JAVA_OPTS=-Xmx" + Math.max(2, 2 * (heap >> 30)) + "g");
            err.flush();
            return EXIT_OUT_OF_MEMORY;
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"moe4j " + (v == null ? "0.1.0-SNAPSHOT" : v),
                    "Java " + Runtime.version() + ", " + System.getProperty("os.arch")};
        }
    }
}
