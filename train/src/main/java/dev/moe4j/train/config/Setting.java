package dev.moe4j.train.config;

/**
 * One option of {@code moe4j train}: the same key on the command line ({@code --key}) and in a config file
 * ({@code key: value}), with its default and a sentence for {@code --help}.
 *
 * @param key          the option's name without dashes, e.g. {@code top-k}
 * @param group        the section of {@code --help} it is listed under
 * @param defaultValue its value when neither a file nor a flag sets it ("" for none)
 * @param label        the placeholder of its value in {@code --help} (e.g. N, LR, FILE); "" for a switch
 * @param description  what it does
 */
public record Setting(String key, Group group, String defaultValue, String label, String description) {
    /** The sections of {@code moe4j train --help}, in order. */
    public enum Group {
        MODEL("Model"),
        ROUTING("Routing (every option of the MoE layer)"),
        BALANCE("Load balancing"),
        LORA("LoRA adapters (fine-tuning an --init checkpoint)"),
        OPTIMISER("Optimiser and schedule"),
        DATA("Data"),
        RUN("Run, evaluation and checkpoints");

        private final String heading;

        Group(String heading) {
            this.heading = heading;
        }

        public String heading() {
            return heading;
        }
    }

    /** True for an on/off option: {@code --key} alone means true, {@code --key false} turns it off. */
    public boolean isSwitch() {
        return label.isEmpty();
    }
}
