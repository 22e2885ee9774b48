// PUTs a file straight to storage through its presigned URL, reporting progress
// (fetch cannot report upload progress; XMLHttpRequest can).

import { ApiError } from "./api.js";

const TYPES = { wav: "audio/wav", flac: "audio/flac", mp3: "audio/mpeg" };

/** The content type the API expects for this file (browsers leave some types blank). */
export function contentTypeOf(file) {
  const ext = file.name.split(".").pop().toLowerCase();
  return TYPES[ext] || file.type || "application/octet-stream";
}

export function putFile(url, headers, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers || {})) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new ApiError(storageMessage(xhr.status), { status: xhr.status, code: "UPLOAD_FAILED" }));
    };
    xhr.onerror = () => reject(new ApiError("The upload was interrupted. Check your connection and try again.", { code: "UPLOAD_FAILED" }));
    xhr.send(file);
  });
}

function storageMessage(status) {
  if (status === 403) return "Storage refused the upload: its link expired or the file changed. Try again.";
  if (status === 413) return "Storage refused the upload: the file is too large.";
  return `Storage refused the upload (HTTP ${status}). Try again.`;
}
