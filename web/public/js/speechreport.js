// A text job's report in words: how much the line sounds like the voice and like the
// text-to-speech voice it was made from (Resemblyzer cosines, gpu/text/speak.py), and which
// of the engine's voices spoke it first.

/** "Sounds like your voice: 0.81 (like the text-to-speech voice: 0.42). Spoken first by …";
 * an instant voice's `to_voice` is measured against its sample, so it says "your sample". */
export function reportText(report, voiceKind = "trained") {
  if (!report) return "";
  const voice = report.base_voice?.voice || "the engine's voice";
  const how = report.base_voice?.chosen === "similarity" ? ", the closest of its voices to yours" : "";
  const target = voiceKind === "instant" ? "your sample" : "your voice";
  const like = report.to_voice == null ? "" : `Sounds like ${target}: ${report.to_voice.toFixed(2)}`;
  const tts = report.to_base == null ? "" : ` (like the text-to-speech voice: ${report.to_base.toFixed(2)})`;
  const spoken = `Spoken first by ${voice}${how}.`;
  return like ? `${like}${tts}. ${spoken}` : spoken;
}
