// Key-aware transpose: the sentence that tells a person how far this voice sings from their
// input, and the shift the worker suggested. The page only suggests; the person decides.

function amount(semitones) {
  const size = Math.abs(semitones);
  const octaves = Math.round(size / 12);
  if (octaves >= 1 && Math.abs(size - 12 * octaves) <= 2) {
    return octaves === 1 ? "about an octave" : `about ${octaves} octaves`;
  }
  const rounded = Math.round(size);
  return `about ${rounded} semitone${rounded === 1 ? "" : "s"}`;
}

function signed(shift) {
  return shift > 0 ? `+${shift}` : String(shift);
}

// `pitch` is a conversion's `pitch` field: {input, voice, interval_semitones,
// suggested_transpose, keeps_key}. Returns {text, shift}; shift is null when there is nothing
// to suggest.
export function pitchAdvice(pitch) {
  if (!pitch || !pitch.input) return { text: "", shift: null };
  if (pitch.suggested_transpose === null || pitch.suggested_transpose === undefined || !pitch.voice) {
    return { text: "This voice's range was not recorded (it was trained before ranges were), so no transpose is suggested.", shift: null };
  }
  const shift = pitch.suggested_transpose;
  const interval = pitch.interval_semitones;
  if (shift === 0) {
    return { text: "This voice sings in about the same range as this input: no transpose needed.", shift: 0 };
  }
  const direction = interval > 0 ? "higher" : "lower";
  let text = `This voice sings ${amount(interval)} ${direction} than this input: ${signed(shift)} suggested.`;
  if (!pitch.keeps_key) text += " That is not a whole octave, so the result changes key against a backing track.";
  return { text, shift };
}
