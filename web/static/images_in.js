// The ways an image comes in to search by: the file picker, a paste, a drop on the page.
// Chromium reports no MIME type for HEIC, HEIF and AVIF files: then their extension decides.
const IMAGE_NAME = /\.(jpe?g|png|gif|webp|bmp|tiff?|heic|heif|avif)$/i;

export function isImage(file) {
  return Boolean(file) && (file.type.startsWith("image/") || (!file.type && IMAGE_NAME.test(file.name)));
}

// onFile(file) for every file that arrives, an image or not (the caller says why it refuses one).
export function takeImages(fileInput, overlay, onFile) {
  fileInput.addEventListener("change", () => {
    onFile(fileInput.files[0]);
    fileInput.value = "";
  });
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])][0];
    if (file) {
      event.preventDefault();
      onFile(file);
    }
  });
  document.addEventListener("dragover", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    overlay.hidden = false;
  });
  overlay.addEventListener("dragleave", () => { overlay.hidden = true; });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    overlay.hidden = true;
    onFile(event.dataTransfer.files[0]);
  });
}
