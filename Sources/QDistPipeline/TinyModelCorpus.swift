/// The built-in text the tiny models' tokenizer learns its merges from: plain English prose
/// about the subjects qdist deals with, written for this project. Any text works; this one only
/// needs to contain common words so merges look like real subwords.
public enum TinyModelCorpus {
    public static let text = """
        A language model reads text as a sequence of tokens and predicts the next token from the ones \
        before it. The model is a stack of decoder blocks. Each block mixes information between \
        positions with attention and then transforms every position with a small network. The \
        weights of these networks are large matrices, and most of the memory of a model is spent on \
        them. Quantization stores each weight with fewer bits: eight, four, three or even two bits \
        instead of sixteen. A scale for every group of weights maps the small integers back to real \
        values. The error this rounding adds can be measured, and good methods keep it small by \
        looking at the inputs the layer actually sees. The second method solves for the rounding of \
        one column at a time and moves the error onto the columns that are still free to change. \
        When the calibration data is large, the work is shared between many processes. Each process \
        reads its own part of the text, computes statistics of the activations, and the processes \
        combine these statistics before one of them solves each layer. The same program runs on a \
        laptop with one process and on a cluster with hundreds of them.

        Fine-tuning changes a model for a new task. Training all of the weights needs memory for the \
        weights, their gradients and the state of the optimizer, which is several times the size of \
        the model itself. Low-rank adapters train two small matrices next to each frozen weight \
        matrix instead, and the frozen weights can stay quantized in four bits. The optimizer state \
        and the gradients can also be split between the processes, so that each one holds only its \
        share. After training, the adapters are saved in a small file that other tools can load.

        Perplexity measures how surprised a model is by a text: it is the exponential of the mean \
        negative log likelihood of every token given the tokens before it. A lower perplexity is \
        better. Comparing the perplexity before and after quantization tells how much quality was \
        lost. Speed is measured in tokens per second, and memory as the peak resident size of each \
        process. The numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 appear in tables; the year was 2024 and \
        the price was $3.50, or 12% more than in 1999. Questions end with a question mark? Lists use \
        commas, semicolons; and colons: like this. "Quotes" and (parentheses) and [brackets] too.
        """
}
