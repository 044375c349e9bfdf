// jsdom lacks DragEvent, which @lumino/dragdrop (through @lumino/widgets) subclasses at import.
if (typeof (globalThis as any).DragEvent === 'undefined') {
  (globalThis as any).DragEvent = class DragEvent extends MouseEvent {};
}
