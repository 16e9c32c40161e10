// The clinician's enrolment recording on its way to the room device: streamed in chunks, then zeroed
// whatever the call's outcome (a refused or failed EnrollVoice must not leave the voice in the page's memory
// until the garbage collector happens to reuse it).

const CHUNK = 32768; // bytes of 16-bit PCM per EnrollVoice message

export async function sendVoice(call, pcm, rate) {
  const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  try {
    const chunks = [];
    for (let i = 0; i < bytes.length; i += CHUNK) chunks.push({ sample_rate: i ? 0 : rate, pcm_s16le: bytes.subarray(i, i + CHUNK) });
    return await call("EnrollVoice", null, { stream: chunks, timeoutMs: 120000 });
  } finally {
    bytes.fill(0);
  }
}
