// Voice enrolment capture on the audio rendering thread (AudioWorklet; replaces the deprecated
// ScriptProcessorNode): the microphone's mono samples as 16-bit PCM at the context's rate, posted to
// the app in 4096-sample blocks, at most `maxSamples` in all (30 s). The same format and limits as before.
class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.left = Math.max(0, Math.floor(options.processorOptions.maxSamples));
    this.block = new Int16Array(4096);
    this.n = 0;
    this.done = false;
    this.port.onmessage = (e) => {
      if (e.data !== "stop" || this.done) return;
      this.flush();
      this.done = true;
      this.port.postMessage({ end: true });
    };
  }

  flush() {
    if (!this.n) return;
    const out = this.block.slice(0, this.n);
    this.block.fill(0);
    this.n = 0;
    this.port.postMessage(out, [out.buffer]);
  }

  process(inputs) {
    if (this.done) return false;
    const samples = inputs[0] && inputs[0][0];
    if (samples) {
      for (let i = 0; i < samples.length && this.left > 0; i++, this.left--) {
        this.block[this.n++] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
        if (this.n === this.block.length) this.flush();
      }
    }
    return true;
  }
}

registerProcessor("edge-agent-capture", Capture);
