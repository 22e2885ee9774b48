// A browser notification when a long job ends while the tab is hidden. Permission is asked
// only when the person presses the button for it, never on page load.

export function offerNotifications(button) {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.onclick = async () => {
    await Notification.requestPermission();
    button.hidden = true;
  };
}

export function notifyWhenHidden(title, body) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return false;
  new Notification(title, { body });
  return true;
}
