// The packing slip's Print button (the CSP allows no inline handler).
document.getElementById("print").addEventListener("click", () => window.print());
