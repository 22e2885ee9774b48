// Which voices a typed line can be spoken in: the profile's trained model (the active one,
// as `POST /profiles/{id}/speech` picks it by default) and each of its instant voices whose
// sample is ready. Pure, so the choices and the `voice` object sent are tested in node.

export const NO_VOICE = "Nothing can speak here yet: train a voice (steps 1 and 2), or add an "
  + "instant sample at the top of this voice's page; then type a line here.";

/**
 * The text panel's voice list: `{value, label, voice}` each, `voice` being the request's
 * `voice` object. Instant voices that are being checked or were refused are left out (the
 * API answers 409 for them), as are another profile's (the instant panel's list may still be
 * the last profile's while the new one loads); a voice's added clips are nested in it, not
 * voices of their own.
 */
export function voiceChoices(models, instantVoices, profileId) {
  const choices = [];
  if (models?.length) {
    choices.push({ value: "trained", label: "Your trained voice (the active model)", voice: { kind: "trained" } });
  }
  for (const voice of instantVoices || []) {
    if (voice.status !== "ready" || (profileId && voice.profile_id !== profileId)) continue;
    choices.push({
      value: `instant:${voice.id}`, label: `${voice.name} (instant sample)`,
      voice: { kind: "instant", instant_voice_id: voice.id },
    });
  }
  return choices;
}
