// feedback: trails. Last frame's output, slightly zoomed, turned and hue-shifted,
// fades under the new image; bright parts leave streaks.
uniform sampler2D u_input;
uniform sampler2D u_prev;
uniform float u_decay;    // 0.9 [0, 0.995] how much of the trail survives each frame
uniform float u_zoom;     // 1.01 [0.9, 1.1] trail zoom per frame (>1 flows outwards)
uniform float u_rotate;   // 0 [-0.1, 0.1] trail turn per frame, radians
uniform float u_hue;      // 0 [-0.1, 0.1] trail hue drift per frame
uniform float u_amount;   // 1 [0, 1] 0 dry, 1 full trails

void main() {
    vec2 p = v_uv - 0.5;
    float c = cos(u_rotate), s = sin(u_rotate);
    vec2 q = mat2(c, -s, s, c) * p / u_zoom + 0.5;
    vec3 trail = inside(q) ? texture(u_prev, q).rgb : vec3(0.0);
    vec3 hsv = rgb2hsv(trail);
    trail = hsv2rgb(vec3(fract(hsv.x + u_hue), hsv.yz)) * u_decay;
    vec3 now = texture(u_input, v_uv).rgb;
    f_color = vec4(mix(now, max(now, trail), u_amount), 1.0);
}
