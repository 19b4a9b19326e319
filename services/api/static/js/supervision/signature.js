// The responsible person's signature, drawn with a finger (or mouse) on a canvas.

export class SignaturePad {
  constructor(canvas) {
    this.canvas = canvas;
    this.strokes = 0;
    this.drawing = false;
    this.resize();
    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    for (const name of ["pointerup", "pointerleave", "pointercancel"])
      canvas.addEventListener(name, () => this.end());
  }

  resize() {
    // the drawing surface matches its on-screen size: one PNG pixel per CSS pixel
    this.canvas.width = Math.max(16, Math.round(this.canvas.clientWidth || 320));
    this.canvas.height = 180;
    this.clear();
  }

  context() {
    const ctx = this.canvas.getContext("2d");
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    return ctx;
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  start(event) {
    event.preventDefault();
    this.drawing = true;
    this.canvas.setPointerCapture?.(event.pointerId);
    const ctx = this.context();
    ctx.beginPath();
    ctx.moveTo(...this.point(event));
  }

  move(event) {
    if (!this.drawing) return;
    const ctx = this.context();
    ctx.lineTo(...this.point(event));
    ctx.stroke();
  }

  end() {
    if (!this.drawing) return;
    this.drawing = false;
    this.strokes += 1;
    this.canvas.dataset.strokes = String(this.strokes);
  }

  clear() {
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.strokes = 0;
    this.canvas.dataset.strokes = "0";
  }

  isEmpty() {
    return this.strokes === 0;
  }

  png() {
    return this.canvas.toDataURL("image/png");
  }
}
