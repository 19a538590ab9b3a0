// crossfade: blend the chain so far with the untouched generated frame (dry/wet),
// in one of several blend modes.
uniform sampler2D u_input;
uniform sampler2D u_source;
uniform vec2 u_source_resolution;
uniform vec2 u_resolution;
uniform float u_amount;  // 0 [0, 1] 0 the chain, 1 the generated frame
uniform float u_mode;    // 0 [0, 4] 0 mix, 1 add, 2 screen, 3 multiply, 4 difference
uniform float u_fit;     // 0 [0, 2] how the generated frame fits: 0 letterbox, 1 crop, 2 stretch

void main() {
    vec3 a = texture(u_input, v_uv).rgb;
    vec2 uv = fit_uv(v_uv, u_source_resolution, u_resolution, u_fit);
    vec3 b = inside(uv) ? texture(u_source, uv).rgb : vec3(0.0);
    vec3 blended = b;
    if (u_mode >= 3.5) blended = abs(a - b);
    else if (u_mode >= 2.5) blended = a * b;
    else if (u_mode >= 1.5) blended = 1.0 - (1.0 - a) * (1.0 - b);
    else if (u_mode >= 0.5) blended = a + b;
    f_color = vec4(mix(a, blended, u_amount), 1.0);
}
