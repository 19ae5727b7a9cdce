/**
 * A job's output chunks cut into lines, each stream on its own (a line of stdout may be written in
 * several chunks, with stderr between them). A line keeps the time of the chunk that began it, as
 * Docker's log lines keep the time they began.
 */
export interface OutputLine {
  stream: 'stdout' | 'stderr';
  /** With its newline, except a last line that had none. */
  text: string;
  at: Date;
}

export class OutputLines {
  private readonly partial = new Map<OutputLine['stream'], { text: string; at: Date }>();

  /** The lines `data` completes (a rest without a newline waits for the next chunk or flush()). */
  add(stream: OutputLine['stream'], data: string, at: Date): OutputLine[] {
    const done: OutputLine[] = [];
    let start = this.partial.get(stream) ?? { text: '', at };
    let from = 0;
    for (let nl = data.indexOf('\n'); nl !== -1; nl = data.indexOf('\n', from)) {
      done.push({ stream, text: start.text + data.slice(from, nl + 1), at: start.at });
      start = { text: '', at };
      from = nl + 1;
    }
    const rest = start.text + data.slice(from);
    if (rest) this.partial.set(stream, { text: rest, at: start.at });
    else this.partial.delete(stream);
    return done;
  }

  /** The lines left without a newline, stdout's first. */
  flush(): OutputLine[] {
    const left = [...this.partial].map(([stream, p]) => ({ stream, text: p.text, at: p.at }));
    this.partial.clear();
    return left.sort((a, b) => (a.stream === b.stream ? 0 : a.stream === 'stdout' ? -1 : 1));
  }
}
