// fit: place the input on the canvas keeping its shape (letterbox), filling it
// (crop), or stretched. Also presents the canvas on the window.
uniform sampler2D u_input;
uniform vec2 u_input_resolution;
uniform vec2 u_resolution;
uniform float u_mode;   // 0 [0, 2] 0 letterbox, 1 crop to fill, 2 stretch
uniform float u_zoom;   // 1 [0.25, 4] scale the picture inside the frame

void main() {
    vec2 uv = fit_uv(v_uv, u_input_resolution, u_resolution, u_mode);
    uv = (uv - 0.5) / u_zoom + 0.5;
    f_color = inside(uv) ? vec4(texture(u_input, uv).rgb, 1.0) : vec4(0.0, 0.0, 0.0, 1.0);
}
